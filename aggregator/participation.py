"""Who took part in each round, and why a site did not: the results store's participation rows."""

from __future__ import annotations

import logging
from typing import Any

from flwr.app import Message, MetricRecord

from aggregator.failure_reasons import concise_reason
from aggregator.results_store import ResultsStore
from aggregator.site_names import SiteNames

logger = logging.getLogger(__name__)

TRAIN = "train"


class ParticipationLog:
    """Records each site's status (ok / failed / rejected, with the reason) and metrics per round.

    The training rows of a round are also kept in memory, for that round's checkpoint.

    Parameters
    ----------
    store : ResultsStore
        Where rows go.
    run_id : str
        Run key in the store.
    names : SiteNames
        Names the site behind a node.
    """

    def __init__(self, store: ResultsStore, run_id: str, names: SiteNames) -> None:
        self.store = store
        self.run_id = run_id
        self.names = names
        self._sampled: dict[tuple[str, int], list[int]] = {}
        self._train_rows: dict[int, list[dict[str, Any]]] = {}

    def sampled(self, phase: str, rnd: int, nodes: list[int]) -> None:
        """Remember which nodes were asked, so that a missing reply is recorded as a failure."""
        self._sampled[(phase, rnd)] = list(nodes)
        if phase == TRAIN:
            self._train_rows[rnd] = []

    def train_rows(self, rnd: int) -> list[dict[str, Any]]:
        """Round ``rnd``'s training rows (node_id, site, status, reason)."""
        return self._train_rows.get(rnd, [])

    def record(self, rnd: int, phase: str, node: int, site: str | None, status: str,
               reason: str | None = None) -> None:
        """Store one site's status in a round (the last status of a node in a round wins)."""
        self.store.record_participation(self.run_id, rnd, phase, node_id=str(node), site=site,
                                        status=status, reason=reason)
        if phase == TRAIN and rnd in self._train_rows:
            rows = [p for p in self._train_rows[rnd] if p["node_id"] != str(node)]
            rows.append({"node_id": str(node), "site": site, "status": status, "reason": reason})
            self._train_rows[rnd] = rows

    def reject(self, rnd: int, phase: str, reply: Message, reason: str) -> None:
        """Record a reply that will not enter the aggregate, with the reason."""
        node = reply.metadata.src_node_id
        site = self.names.of(node, reply)
        logger.warning("round %d %s: rejected the reply of %s (node %s): %s", rnd, phase, site, node, reason)
        self.record(rnd, phase, node, site, "rejected", reason)

    def replies(self, rnd: int, phase: str, replies: list[Message]) -> None:
        """Record every reply of a round, and a failure for each asked node that did not answer."""
        sampled = self._sampled.get((phase, rnd), [])
        answered: set[int] = set()
        unattributed: set[str] = set()  # e.g. "Node Unavailable" replies carry no real node id
        for reply in replies:
            node = reply.metadata.src_node_id
            if reply.has_error():
                if node not in sampled:
                    unattributed.add(reply.error.reason)
                    continue
                answered.add(node)
                self._failure(rnd, phase, node, reply.error.reason)
                continue
            answered.add(node)
            site = self.names.of(node, reply)
            if self.names.remember(node, site):
                self.store.name_node(self.run_id, str(node), site)
            metrics = next(iter(reply.content.metric_records.values()), MetricRecord())
            self.store.record_site_metrics(
                self.run_id, rnd, phase, site,
                {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
            )
            self.record(rnd, phase, node, site, "ok")
        missing_reason = "; ".join(sorted(unattributed)) or "no reply before the round timeout"
        for node in sampled:
            if node not in answered:
                self._failure(rnd, phase, node, missing_reason)

    def _failure(self, rnd: int, phase: str, node: int, reason: str) -> None:
        reason = concise_reason(reason)
        site = self.names.known(node)
        logger.warning("round %d %s: node %s (%s) failed: %s", rnd, phase, node, site, reason)
        self.record(rnd, phase, node, site, "failed", reason)
