"""FedAvg that turns robust as soon as the round has enough sites: the default aggregation.

With three or more accepted replies, the global model is the coordinate-wise trimmed mean
(Yin et al., "Byzantine-Robust Distributed Learning", ICML 2018; Flower's ``FedTrimmedAvg``),
cutting at least one site at each end (``max(trim_beta, 1/n)`` of the ``n`` sites), so no single
site can move a coordinate outside the range of the others. With one or two replies there is
nothing to trim (the median of two is their mean): the weighted mean is used, with the weights
bounded by :mod:`aggregator.example_weights` and each update by the run's absolute norm bound
(:mod:`aggregator.update_validation`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import FedAvg, FedTrimmedAvg

ROBUST_FROM = 3  # sites in a round from which the trimmed mean is used


class AutoRobustFedAvg(FedTrimmedAvg):
    """Trimmed mean from :data:`ROBUST_FROM` replies on, FedAvg's weighted mean below.

    Parameters
    ----------
    trim_beta : float
        Least fraction cut at each end, in [0, 0.5). (default: 0.2)
    **kwargs
        FedAvg's arguments.
    """

    def __init__(self, *, trim_beta: float = 0.2, **kwargs: Any) -> None:
        super().__init__(beta=trim_beta, **kwargs)
        self.trim_beta = trim_beta

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Trimmed mean of the round's updates when it has enough sites, else the weighted mean."""
        replies = list(replies)
        n = sum(1 for r in replies if not r.has_error())
        if n < ROBUST_FROM:
            return FedAvg.aggregate_train(self, server_round, replies)
        # (1 + 1e-9) / n: int(beta * n) >= 1 despite float rounding; < 0.5 for n >= 3
        self.beta = max(self.trim_beta, (1 + 1e-9) / n)
        return super().aggregate_train(server_round, replies)
