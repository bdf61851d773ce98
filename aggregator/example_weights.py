"""How much each site weighs in the aggregate: bounded by what the aggregator knows.

A site's ``num-examples`` is self-reported; left as is, one site reporting 1e12 examples would
become the whole global model. So, before the wrapped strategy averages, each accepted training
reply's weight is replaced by

* ``min(reported, registered size)`` when every replying site has a size in the consortium
  registry (``fedmpt consortium add-site --patients N``);
* otherwise ``1`` for every site (equal weights): the aggregator knows nothing that would
  justify another weight.

The per-site metrics in the results store keep the reported number.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from flwr.app import Message

from infra.record_keys import WEIGHT_KEY

logger = logging.getLogger(__name__)

REGISTERED = "registered sizes"
EQUAL = "equal weights"


def bound_weights(replies: list[Message], registered: Mapping[int, int] | None = None, *,
                  weight_key: str = WEIGHT_KEY) -> str:
    """Rewrite the weight of each (validated) training reply in place; return the rule used.

    Parameters
    ----------
    replies : list of Message
        Accepted training replies, each with exactly one MetricRecord holding ``weight_key``.
    registered : mapping of int to int or None
        Node id -> registered number of patients. (default: None)
    weight_key : str
        The weight metric. (default: ``"num-examples"``)
    """
    nodes = [r.metadata.src_node_id for r in replies]
    rule = REGISTERED if registered and all(n in registered for n in nodes) else EQUAL
    for reply, node in zip(replies, nodes, strict=True):
        record = next(iter(reply.content.metric_records.values()))
        value = record[weight_key]
        reported = float(value) if isinstance(value, (int, float)) else math.inf
        bound = min(reported, float(registered[node])) if rule == REGISTERED and registered else 1.0
        if reported > bound and rule == REGISTERED:
            logger.warning("node %s reported %s examples, more than its registered %s; weighting it %s",
                           node, reported, bound, bound)
        record[weight_key] = int(bound) if math.isfinite(bound) and bound == int(bound) else bound
    return rule
