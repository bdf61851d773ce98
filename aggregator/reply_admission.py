"""Which replies of a round may enter the aggregate, and with what weight.

Training replies from nodes outside the consortium registry (unregistered or revoked) are
rejected; the rest go through :mod:`aggregator.update_validation` against the global model that
was sent; the accepted ones get weights bounded by :mod:`aggregator.example_weights`. An
evaluation reply needs one MetricRecord with a finite, positive weight (Flower's averaging
would crash otherwise). Every rejection is recorded with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
from flwr.app import Message

from aggregator.example_weights import bound_weights
from aggregator.participation import ParticipationLog
from aggregator.site_names import SiteNames
from aggregator.update_validation import ValidationPolicy, validate_round
from infra.record_keys import WEIGHT_KEY

logger = logging.getLogger(__name__)


class ReplyAdmission:
    """Screens a round's replies before the wrapped strategy sees them.

    Parameters
    ----------
    names : SiteNames
        Registry of the consortium (who may contribute).
    log : ParticipationLog
        Where rejections are recorded.
    validation : ValidationPolicy or None
        Checks on training replies; ``None`` turns them off (weights are still bounded).
    registered_sizes : mapping of int to int or None
        Node id -> registered number of patients, the bound on a site's weight. (default: None)
    """

    def __init__(self, names: SiteNames, log: ParticipationLog, validation: ValidationPolicy | None,
                 registered_sizes: Mapping[int, int] | None = None) -> None:
        self.names = names
        self.log = log
        self.validation = validation
        self.registered_sizes = dict(registered_sizes) if registered_sizes else None

    @property
    def weight_key(self) -> str:
        """The metric that weights a site."""
        return self.validation.weight_key if self.validation is not None else WEIGHT_KEY

    def train(self, rnd: int, replies: list[Message], reference: Mapping[str, np.ndarray]) -> list[Message]:
        """The training replies that may be aggregated, their weights bounded."""
        ok = [r for r in replies if not r.has_error()]
        for reply in [r for r in ok if not self.names.is_registered(r.metadata.src_node_id)]:
            self.log.reject(rnd, "train", reply,
                            "node is not in the consortium registry (unregistered or revoked)")
        ok = [r for r in ok if self.names.is_registered(r.metadata.src_node_id)]
        if self.validation is not None and reference and ok:
            verdicts = validate_round({i: r.content for i, r in enumerate(ok)}, reference, self.validation)
            for i, reply in enumerate(ok):
                if verdicts[i].norm is not None:
                    logger.info("round %d: update norm of %s: %.4g", rnd,
                                self.names.of(reply.metadata.src_node_id, reply), verdicts[i].norm)
                if not verdicts[i].accepted:
                    self.log.reject(rnd, "train", reply, str(verdicts[i].reason))
            ok = [r for i, r in enumerate(ok) if verdicts[i].accepted]
        if ok:
            bound_weights(ok, self.registered_sizes, weight_key=self.weight_key)
        return ok

    def evaluate(self, rnd: int, replies: list[Message]) -> list[Message]:
        """Error replies (Flower skips them) and the well-formed evaluation replies."""
        return [r for r in replies if r.has_error() or self._evaluation_ok(rnd, r)]

    def _evaluation_ok(self, rnd: int, reply: Message) -> bool:
        records = list(reply.content.metric_records.values())
        weight = records[0].get(self.weight_key) if len(records) == 1 else None
        if isinstance(weight, (int, float)) and np.isfinite(weight) and weight > 0:
            return True
        self.log.reject(rnd, "evaluate", reply, f"expected 1 MetricRecord with a finite "
                                               f"{self.weight_key!r} > 0, got {len(records)} record(s)")
        return False
