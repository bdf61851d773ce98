"""A strategy wrapper that records what every site did in every round, then checkpoints.

It delegates the maths to the wrapped Flower strategy (as Flower's DP wrappers do) and adds
what a consortium must keep, each through a small collaborator: site names from the registry
(:mod:`aggregator.site_names`), who took part and why a site did not
(:mod:`aggregator.participation`), which replies may enter the aggregate and with what weight
(:mod:`aggregator.reply_admission`), signed requests (:mod:`aggregator.round_signer`), the
model's own dtypes (:mod:`aggregator.model_dtypes`) and a signed checkpoint after each round.

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
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from aggregator.checkpoints import save_checkpoint, save_signed_checkpoint
from aggregator.model_dtypes import in_dtypes
from aggregator.participation import ParticipationLog
from aggregator.reply_admission import ReplyAdmission
from aggregator.results_store import ResultsStore
from aggregator.round_signer import RoundSigner
from aggregator.site_names import SiteNames
from aggregator.strategies import export_strategy_state, is_per_site_only
from aggregator.update_validation import ValidationPolicy

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
    registered_sizes : mapping of int to int or None
        Registered node id -> number of patients, the bound on a site's weight
        (:mod:`aggregator.example_weights`). (default: None: equal weights)
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
        registered_sizes: Mapping[int, int] | None = None,
        round_offset: int = 0,
        checkpoint_extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.strategy = strategy
        self.store = store
        self.run_id = run_id
        self.checkpoint_dir = Path(checkpoint_dir)
        self.signing_key = signing_key
        self.round_offset = int(round_offset)
        self.checkpoint_extra = dict(checkpoint_extra or {})
        self.names = SiteNames(registry)
        self.participation = ParticipationLog(store, run_id, self.names)
        self.admission = ReplyAdmission(self.names, self.participation, validation, registered_sizes)
        self.signer = RoundSigner(run_id, signing_key)
        self._reference: dict[str, np.ndarray] = {}
        self._dtypes: dict[str, np.dtype[Any]] = {}

    def summary(self) -> None:
        """Log the wrapped strategy's summary."""
        logger.info("Recording per-site results of run %s (from round %d)", self.run_id,
                    self.round_offset + 1)
        self.strategy.summary()

    def site_of(self, node: int, reply: Message | None = None) -> str:
        """The site behind ``node``: the registered name when a registry is set."""
        return self.names.of(node, reply)

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
        self.participation.sampled("train", rnd, [m.metadata.dst_node_id for m in messages])
        return self.signer.sign("train", rnd, arrays, messages)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Delegate, remembering which nodes were asked."""
        rnd = server_round + self.round_offset
        messages = list(self.strategy.configure_evaluate(rnd, arrays, config, grid))
        self.participation.sampled("evaluate", rnd, [m.metadata.dst_node_id for m in messages])
        return self.signer.sign("evaluate", rnd, arrays, messages)

    # -- aggregate ----------------------------------------------------------------------
    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Record each reply, reject invalid updates, aggregate the rest, checkpoint."""
        rnd = server_round + self.round_offset
        replies = self._in_site_order(list(replies))
        self.participation.replies(rnd, "train", replies)
        _drop_per_site_only(replies)
        accepted = self.admission.train(rnd, replies, self._reference)
        arrays, metrics = self.strategy.aggregate_train(rnd, accepted)
        if metrics is not None:
            self.store.record_global_metrics(self.run_id, rnd, "train", dict(metrics))
        if arrays is not None:
            arrays = in_dtypes(arrays, self._dtypes)
            self._checkpoint(rnd, arrays)
        return arrays, metrics

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Record each site's validation metrics, then aggregate them."""
        rnd = server_round + self.round_offset
        replies = self._in_site_order(list(replies))
        self.participation.replies(rnd, "evaluate", replies)
        _drop_per_site_only(replies)
        metrics = self.strategy.aggregate_evaluate(rnd, self.admission.evaluate(rnd, replies))
        if metrics is not None:
            self.store.record_global_metrics(self.run_id, rnd, "evaluate", dict(metrics))
        return metrics

    # -- helpers ------------------------------------------------------------------------
    def _in_site_order(self, replies: list[Message]) -> list[Message]:
        # Replies arrive in completion order; aggregating in a fixed order makes the sum,
        # hence the global model, bitwise reproducible (same updates -> same weights hash).
        return sorted(replies, key=lambda r: (r.has_error(), self.names.of(r.metadata.src_node_id, r),
                                              r.metadata.src_node_id))

    def _checkpoint(self, rnd: int, arrays: ArrayRecord) -> None:
        state = {
            "model": arrays.to_torch_state_dict(),
            "strategy_state": export_strategy_state(self.strategy),
            "arrays_digest": self.signer.digest(arrays),
            "participation": self.participation.train_rows(rnd),
            **self.checkpoint_extra,
        }
        if self.signing_key is None:
            save_checkpoint(self.checkpoint_dir, rnd, {"run_id": self.run_id, **state})
        else:
            save_signed_checkpoint(self.checkpoint_dir, rnd, state, run_id=self.run_id,
                                   key=self.signing_key)
