"""Names of the records in a round's messages, shared by the aggregator and the sites.

A leaf: the aggregator (which writes and reads them) and the site's ClientApp both import it,
so neither side spells a key the other could miss.
"""

from __future__ import annotations

from enum import StrEnum


class RecordKey(StrEnum):
    """Keys of the records in a train/evaluate request and its reply (docs/contracts.md)."""

    ARRAYS = "arrays"  # ArrayRecord: the global model (request) or the site's weights (train reply)
    CONFIG = "config"  # ConfigRecord: the round request, federation.protocol's wire format
    METRICS = "metrics"  # MetricRecord: the site's whitelisted numbers (reply)
    SITE = "site"  # ConfigRecord in each reply: {"name": <site name from its node config>}
    INTEGRITY = "integrity"  # ConfigRecord: the aggregator's signature over model and request


WEIGHT_KEY = "num-examples"  # the metric that weights a site in Flower's aggregates
