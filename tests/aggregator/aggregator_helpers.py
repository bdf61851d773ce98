"""Helpers for strategy-level tests: a fake Grid and replies built as Flower would."""

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from infra.record_keys import RecordKey


class FakeGrid:
    """The only Grid method a strategy's configure step calls."""

    def __init__(self, node_ids):
        self.node_ids = list(node_ids)

    def get_node_ids(self):
        return list(self.node_ids)


def global_model(seed=0):
    rng = np.random.default_rng(seed)
    return {"encoder.weight": rng.normal(size=(6, 4)).astype(np.float32),
            "encoder.bias": np.zeros(4, np.float32),
            "head.weight": rng.normal(size=(4, 2)).astype(np.float32)}


def as_record(arrays):
    return ArrayRecord({k: Array(np.asarray(v)) for k, v in arrays.items()})


def reply_to(message, arrays, *, site, n=10, metrics=None):
    content = RecordDict({
        "arrays": as_record(arrays),
        "metrics": MetricRecord({"num-examples": n, "train_loss": 1.0, **(metrics or {})}),
        RecordKey.SITE: ConfigRecord({"name": site}),
    })
    return Message(content, reply_to=message)


def honest_update(reference, seed, scale=0.01):
    rng = np.random.default_rng(seed)
    return {k: (v + scale * rng.normal(size=v.shape)).astype(v.dtype) for k, v in reference.items()}
