"""A strategy wrapper that records what every site did in every round, then checkpoints.

It delegates the maths to the wrapped Flower strategy (as Flower's DP wrappers do) and adds
what a consortium must keep: per-site metrics, who took part and why a site did not, update
validation before aggregation (:mod:`aggregator.update_validation`), signed global models
(:mod:`infra.round_integrity`) and a signed checkpoint after each round.

Rounds are numbered from ``round_offset + 1``: a run resumed from the checkpoint of round
``k`` passes ``round_offset=k`` and asks Flower for the remaining rounds only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from aggregator.checkpoints import save_checkpoint, save_signed_checkpoint
from aggregator.failure_reasons import concise_reason
from aggregator.results_store import ResultsStore
from aggregator.strategies import export_strategy_state, is_per_site_only
from aggregator.update_validation import ValidationPolicy, validate_round
from infra.record_keys import RecordKey
from infra.round_integrity import sign_round
from infra.signatures import arrays_digest

logger = logging.getLogger(__name__)

def _drop_per_site_only(replies: list[Message]) -> None:
    """Remove per-site-only metrics (already recorded) from the replies before the wrapped strategy sees them.

    They are never averaged, and Flower aggregates only replies whose MetricRecords have the same keys:
    data-QA statistics differ from site to site (a count a site suppressed is absent).
    """
    for reply in replies:
        if reply.has_error():
            continue
        for name, record in list(reply.content.metric_records.items()):
            if any(is_per_site_only(key) for key in record):
                reply.content[name] = MetricRecord({k: v for k, v in record.items() if not is_per_site_only(k)})


def site_name_of(reply: Message) -> str | None:
    """The site name a reply carries, if any."""
    record = reply.content.config_records.get(RecordKey.SITE) if not reply.has_error() else None
    return str(record["name"]) if record is not None and "name" in record else None


class SiteRecordingStrategy(Strategy):
    """Record per-site metrics and participation around a wrapped strategy.

    Parameters
    ----------
    strategy : Strategy
        The aggregation strategy doing the work (FedAvg, FedProx, FedAdam, ...).
    store : ResultsStore
        Where metrics and participation go.
    run_id : str
        Run key in the store.
    checkpoint_dir : Path
        Where the global model is written after each round.
    validation : ValidationPolicy or None
        Checks on training replies before aggregation; ``None`` turns them off.
        (default: ``ValidationPolicy()``)
    signing_key : Ed25519PrivateKey or None
        The aggregator key: signs the global model sent each round and each checkpoint.
        Without it, checkpoints are written unsigned and messages carry no signature.
        (default: None)
    registry : mapping of int to str or None
        Registered node id -> site name. When given, it alone names a site (a node's
        self-declared name is only compared with it); otherwise the declared name is used.
        (default: None)
    round_offset : int
        Rounds already done before this start (resume). (default: 0)
    checkpoint_extra : mapping or None
        Plain values stored in every checkpoint (e.g. config and its hash). (default: None)
    """

    def __init__(
        self,
        strategy: Strategy,
        *,
        store: ResultsStore,
        run_id: str,
        checkpoint_dir: Path,
        validation: ValidationPolicy | None = ValidationPolicy(),
        signing_key: Ed25519PrivateKey | None = None,
        registry: Mapping[int, str] | None = None,
        round_offset: int = 0,
        checkpoint_extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.strategy = strategy
        self.store = store
        self.run_id = run_id
        self.checkpoint_dir = Path(checkpoint_dir)
        self.validation = validation
        self.signing_key = signing_key
        self.registry = dict(registry) if registry is not None else None
        self.round_offset = int(round_offset)
        self.checkpoint_extra = dict(checkpoint_extra or {})
        self._sampled: dict[tuple[str, int], list[int]] = {}
        self._site_of_node: dict[int, str] = {}
        self._reference: dict[str, np.ndarray] = {}
        self._dtypes: dict[str, np.dtype[Any]] = {}
        self._participation: dict[int, list[dict[str, Any]]] = {}
        self._warned: set[int] = set()
        self._digest_cache: tuple[ArrayRecord | None, str] = (None, "")

    def summary(self) -> None:
        """Log the wrapped strategy's summary."""
        logger.info("Recording per-site results of run %s (from round %d)", self.run_id,
                    self.round_offset + 1)
        self.strategy.summary()

    # -- configure ----------------------------------------------------------------------
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Delegate, remembering the global model and which nodes were asked."""
        rnd = server_round + self.round_offset
        self._reference = {k: v.numpy() for k, v in arrays.items()}
        if not self._dtypes:  # the model's own dtypes, to keep the global model in them
            self._dtypes = {k: v.dtype for k, v in self._reference.items()}
        messages = list(self.strategy.configure_train(rnd, arrays, config, grid))
        return self._sign_and_remember("train", rnd, arrays, messages)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Delegate, remembering which nodes were asked."""
        rnd = server_round + self.round_offset
        messages = list(self.strategy.configure_evaluate(rnd, arrays, config, grid))
        return self._sign_and_remember("evaluate", rnd, arrays, messages)

    def _sign_and_remember(
        self, phase: str, rnd: int, arrays: ArrayRecord, messages: list[Message]
    ) -> list[Message]:
        self._sampled[(phase, rnd)] = [m.metadata.dst_node_id for m in messages]
        if self.signing_key is not None:
            for message in messages:  # FedAvg shares one RecordDict: signing it twice is harmless
                config = message.content.config_records[RecordKey.CONFIG]
                message.content[RecordKey.INTEGRITY] = sign_round(
                    arrays, config, run_id=self.run_id, round=rnd, phase=phase,
                    key=self.signing_key, digest=self._digest(arrays))
        return messages

    # -- aggregate ----------------------------------------------------------------------
    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Record each reply, reject invalid updates, aggregate the rest, checkpoint."""
        rnd = server_round + self.round_offset
        replies = self._in_site_order(list(replies))
        self._participation[rnd] = []
        self._record_replies(rnd, "train", replies)
        _drop_per_site_only(replies)
        accepted = self._validate(rnd, replies)
        arrays, metrics = self.strategy.aggregate_train(rnd, accepted)
        if arrays is not None:
            arrays = self._in_model_dtypes(arrays)
        if metrics is not None:
            self.store.record_global_metrics(self.run_id, rnd, "train", dict(metrics))
        if arrays is not None:
            self._checkpoint(rnd, arrays)
        return arrays, metrics

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Record each site's validation metrics, then aggregate them."""
        rnd = server_round + self.round_offset
        replies = self._in_site_order(list(replies))
        self._record_replies(rnd, "evaluate", replies)
        _drop_per_site_only(replies)
        replies = [r for r in replies if r.has_error() or self._evaluate_reply_ok(rnd, r)]
        metrics = self.strategy.aggregate_evaluate(rnd, replies)
        if metrics is not None:
            self.store.record_global_metrics(self.run_id, rnd, "evaluate", dict(metrics))
        return metrics

    # -- helpers ------------------------------------------------------------------------
    def site_of(self, node: int, reply: Message | None = None) -> str:
        """The site behind ``node``: the registered name when a registry is set."""
        declared = site_name_of(reply) if reply is not None else None
        if self.registry is None:
            return declared or self._site_of_node.get(node) or f"node-{node}"
        registered = self.registry.get(node)
        if registered is None:
            return f"unregistered-node-{node}"
        if declared is not None and declared != registered and node not in self._warned:
            self._warned.add(node)
            logger.warning("node %s declares site %r but is registered as %r; recording %r",
                           node, declared, registered, registered)
        return registered

    def _digest(self, arrays: ArrayRecord) -> str:
        # The same aggregated ArrayRecord is checkpointed, sent for evaluation and sent for the
        # next round's training: hash it once.
        cached, digest = self._digest_cache
        if cached is not arrays:
            digest = arrays_digest(arrays)
            self._digest_cache = (arrays, digest)
        return digest

    def _in_site_order(self, replies: list[Message]) -> list[Message]:
        # Replies arrive in completion order; aggregating in a fixed order makes the sum,
        # hence the global model, bitwise reproducible (same seed -> same weights hash).
        return sorted(replies, key=lambda r: (r.has_error(), self.site_of(r.metadata.src_node_id, r),
                                              r.metadata.src_node_id))

    def _in_model_dtypes(self, arrays: ArrayRecord) -> ArrayRecord:
        # FedAdam's update mixes float64 scalars in; keep the global model in its own dtypes.
        if all(np.dtype(arrays[k].dtype) == self._dtypes.get(k) for k in arrays):
            return arrays
        return ArrayRecord({k: Array(np.asarray(v.numpy(), dtype=self._dtypes.get(k)))
                            for k, v in arrays.items()})

    def _validate(self, rnd: int, replies: list[Message]) -> list[Message]:
        ok = [r for r in replies if not r.has_error()]
        if self.registry is not None:  # only registered (and not revoked) sites contribute
            for reply in [r for r in ok if r.metadata.src_node_id not in self.registry]:
                node = reply.metadata.src_node_id
                self._record(rnd, "train", node, self.site_of(node, reply), "rejected",
                             "node is not in the consortium registry (unregistered or revoked)")
            ok = [r for r in ok if r.metadata.src_node_id in self.registry]
        if self.validation is None or not self._reference or not ok:
            return ok
        verdicts = validate_round({i: r.content for i, r in enumerate(ok)}, self._reference,
                                  self.validation)
        accepted = []
        for i, reply in enumerate(ok):
            verdict = verdicts[i]
            if verdict.accepted:
                accepted.append(reply)
                continue
            node = reply.metadata.src_node_id
            site = self.site_of(node, reply)
            logger.warning("round %d: rejected the update of %s (node %s): %s",
                           rnd, site, node, verdict.reason)
            self._record(rnd, "train", node, site, "rejected", verdict.reason)
        return accepted

    def _evaluate_reply_ok(self, rnd: int, reply: Message) -> bool:
        # A reply without one MetricRecord and a positive weight would crash Flower's averaging.
        key = self.validation.weight_key if self.validation is not None else "num-examples"
        records = list(reply.content.metric_records.values())
        weight = records[0].get(key) if len(records) == 1 else None
        if isinstance(weight, (int, float)) and np.isfinite(weight) and weight > 0:
            return True
        node = reply.metadata.src_node_id
        reason = f"expected 1 MetricRecord with a finite {key!r} > 0, got {len(records)} record(s)"
        logger.warning("round %d: rejected the evaluation of node %s: %s", rnd, node, reason)
        self._record(rnd, "evaluate", node, self.site_of(node, reply), "rejected", reason)
        return False

    def _checkpoint(self, rnd: int, arrays: ArrayRecord) -> None:
        model = arrays.to_torch_state_dict()
        state = {
            "model": model,
            "strategy_state": export_strategy_state(self.strategy),
            "arrays_digest": self._digest(arrays),
            "participation": self._participation.get(rnd, []),
            **self.checkpoint_extra,
        }
        if self.signing_key is None:
            save_checkpoint(self.checkpoint_dir, rnd, {"run_id": self.run_id, **state})
        else:
            save_signed_checkpoint(self.checkpoint_dir, rnd, state, run_id=self.run_id,
                                   key=self.signing_key)

    def _record(self, rnd: int, phase: str, node: int, site: str | None, status: str,
                reason: str | None = None) -> None:
        self.store.record_participation(self.run_id, rnd, phase, node_id=str(node), site=site,
                                        status=status, reason=reason)
        if phase == "train" and rnd in self._participation:
            rows = [p for p in self._participation[rnd] if p["node_id"] != str(node)]
            rows.append({"node_id": str(node), "site": site, "status": status, "reason": reason})
            self._participation[rnd] = rows

    def _record_replies(self, server_round: int, phase: str, replies: list[Message]) -> None:
        sampled = self._sampled.get((phase, server_round), [])
        answered: set[int] = set()
        unattributed: set[str] = set()  # e.g. "Node Unavailable" replies carry no real node id
        for reply in replies:
            node = reply.metadata.src_node_id
            if reply.has_error():
                if node not in sampled:
                    unattributed.add(reply.error.reason)
                    continue
                answered.add(node)
                self._record_failure(server_round, phase, node, reply.error.reason)
                continue
            answered.add(node)
            site = self.site_of(node, reply)
            if node not in self._site_of_node:
                self.store.name_node(self.run_id, str(node), site)
            self._site_of_node[node] = site
            metrics = next(iter(reply.content.metric_records.values()), MetricRecord())
            self.store.record_site_metrics(
                self.run_id, server_round, phase, site,
                {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
            )
            self._record(server_round, phase, node, site, "ok")
        missing_reason = "; ".join(sorted(unattributed)) or "no reply before the round timeout"
        for node in sampled:
            if node not in answered:
                self._record_failure(server_round, phase, node, missing_reason)

    def _record_failure(self, server_round: int, phase: str, node: int, reason: str) -> None:
        reason = concise_reason(reason)
        site = self.registry.get(node) if self.registry is not None else self._site_of_node.get(node)
        logger.warning("round %d %s: node %s (%s) failed: %s", server_round, phase, node, site, reason)
        self._record(server_round, phase, node, site, "failed", reason)
