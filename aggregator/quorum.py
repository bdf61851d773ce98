"""A round counts only if enough sites trained in it (``min_sites``).

Flower's strategies wait for ``min_available_nodes`` before sampling, but then aggregate
whatever came back: with two of three sites refusing, one site's update became the global
model and the run was reported completed. :func:`require_quorum` makes the strategy's
training aggregation refuse a round in which fewer than ``min_sites`` valid updates arrived
(errors, refusals and rejected updates do not count), before anything is aggregated or
checkpointed; the ServerApp then retries from the last good checkpoint or fails the run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flwr.app import Message
from flwr.serverapp.strategy import Strategy


class QuorumNotMet(RuntimeError):
    """Fewer sites than required trained in a round."""

    def __init__(self, server_round: int, trained: int, required: int) -> None:
        super().__init__(f"round {server_round}: {trained} of the required {required} site(s) "
                         "trained; the others' reasons are in the participation table")
        self.server_round = server_round
        self.trained = trained
        self.required = required


class SecureAggregationHalted(RuntimeError):
    """Flower's SecAgg+ workflow stopped a round (too few sites answered a stage) before aggregating."""


def require_quorum(strategy: Strategy, *, min_sites: int) -> Strategy:
    """Make ``strategy.aggregate_train`` raise :class:`QuorumNotMet` below ``min_sites`` updates.

    The strategy object itself is kept (its server-side optimiser state is checkpointed by
    attribute), only its training aggregation is guarded. Returns ``strategy``.
    """
    aggregate = strategy.aggregate_train

    def aggregate_with_quorum(server_round: int, replies: Iterable[Message]) -> Any:
        replies = list(replies)
        trained = sum(1 for reply in replies if not reply.has_error())
        if trained < min_sites:
            raise QuorumNotMet(server_round, trained, min_sites)
        return aggregate(server_round, replies)

    strategy.aggregate_train = aggregate_with_quorum  # type: ignore[method-assign]
    return strategy
