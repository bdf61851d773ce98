"""A strategy wrapper that records what every site did in every round, then checkpoints.

It delegates the maths to the wrapped Flower strategy (as Flower's DP wrappers do) and adds
what a consortium must keep: per-site metrics, who took part and why a site did not, and
the global model after each round.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from aggregator.checkpoints import save_checkpoint
from aggregator.results_store import ResultsStore

logger = logging.getLogger(__name__)

SITE_RECORD = "site"  # ConfigRecord in each reply: {"name": <site name from its node config>}


def site_name_of(reply: Message) -> str | None:
    """The site name a reply carries, if any."""
    record = reply.content.config_records.get(SITE_RECORD) if not reply.has_error() else None
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
    """

    def __init__(
        self, strategy: Strategy, *, store: ResultsStore, run_id: str, checkpoint_dir: Path
    ) -> None:
        self.strategy = strategy
        self.store = store
        self.run_id = run_id
        self.checkpoint_dir = Path(checkpoint_dir)
        self._sampled: dict[tuple[str, int], list[int]] = {}
        self._site_of_node: dict[int, str] = {}

    def summary(self) -> None:
        """Log the wrapped strategy's summary."""
        logger.info("Recording per-site results of run %s", self.run_id)
        self.strategy.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Delegate, remembering which nodes were asked."""
        messages = list(self.strategy.configure_train(server_round, arrays, config, grid))
        self._sampled[("train", server_round)] = [m.metadata.dst_node_id for m in messages]
        return messages

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Delegate, remembering which nodes were asked."""
        messages = list(self.strategy.configure_evaluate(server_round, arrays, config, grid))
        self._sampled[("evaluate", server_round)] = [m.metadata.dst_node_id for m in messages]
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Record each site's reply, aggregate with the wrapped strategy, checkpoint."""
        replies = list(replies)
        self._record_replies(server_round, "train", replies)
        arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        if metrics is not None:
            self.store.record_global_metrics(self.run_id, server_round, "train", dict(metrics))
        if arrays is not None:
            save_checkpoint(
                self.checkpoint_dir,
                server_round,
                {"run_id": self.run_id, "model": arrays.to_torch_state_dict()},
            )
        return arrays, metrics

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Record each site's validation metrics, then aggregate them."""
        replies = list(replies)
        self._record_replies(server_round, "evaluate", replies)
        metrics = self.strategy.aggregate_evaluate(server_round, replies)
        if metrics is not None:
            self.store.record_global_metrics(self.run_id, server_round, "evaluate", dict(metrics))
        return metrics

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
            site = site_name_of(reply) or f"node-{node}"
            self._site_of_node[node] = site
            metrics = next(iter(reply.content.metric_records.values()), MetricRecord())
            self.store.record_site_metrics(
                self.run_id, server_round, phase, site,
                {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
            )
            self.store.record_participation(
                self.run_id, server_round, phase, node_id=str(node), site=site, status="ok"
            )
        missing_reason = "; ".join(sorted(unattributed)) or "no reply before the round timeout"
        for node in sampled:
            if node not in answered:
                self._record_failure(server_round, phase, node, missing_reason)

    def _record_failure(self, server_round: int, phase: str, node: int, reason: str) -> None:
        site = self._site_of_node.get(node)
        logger.warning("round %d %s: node %s (%s) failed: %s", server_round, phase, node, site, reason)
        self.store.record_participation(
            self.run_id, server_round, phase,
            node_id=str(node), site=site, status="failed", reason=reason,
        )
