"""Keep the global model in its own dtypes across aggregation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord


def in_dtypes(arrays: ArrayRecord, dtypes: Mapping[str, np.dtype[Any]]) -> ArrayRecord:
    """``arrays`` with each array cast to ``dtypes[key]`` (unchanged when all already match).

    FedAdam's update mixes float64 scalars in; the model's float32 weights must stay float32.
    """
    if all(np.dtype(arrays[k].dtype) == dtypes.get(k) for k in arrays):
        return arrays
    return ArrayRecord({k: Array(np.asarray(v.numpy(), dtype=dtypes.get(k))) for k, v in arrays.items()})
