"""The site bounds its own update: ``new - global`` clipped to the run's L2 ``update-norm-bound``.

Both ClientApps do it: the plain one, so that the aggregator can reject any update above the
bound without ever rejecting an honest site (:mod:`aggregator.update_validation`); the secure
aggregation one, because the aggregator only sees the masked sum there. Clipping DP-SGD's output
is post-processing, so it costs no privacy. A non-finite update is refused outright.
"""

from __future__ import annotations

import math

import numpy as np
import torch

NDArrays = list[np.ndarray]
StateDict = dict[str, torch.Tensor]


def clip_update(update: NDArrays, bound: float) -> tuple[NDArrays, float]:
    """Scale ``update`` to L2 norm at most ``bound``; return it and its norm before clipping.

    Raises
    ------
    ValueError
        If the update has a NaN or infinite entry, or ``bound`` is not positive.
    """
    if not bound > 0:
        raise ValueError(f"update-norm-bound must be > 0, got {bound}")
    norm = math.sqrt(sum(float(np.square(a, dtype=np.float64).sum()) for a in update))
    if not math.isfinite(norm):
        raise ValueError("the local update is not finite; refusing to send it")
    scale = min(1.0, bound / norm) if norm > 0 else 1.0
    return [(a * scale).astype(a.dtype, copy=False) for a in update], norm


def clip_state(new: StateDict, old: StateDict, bound: float) -> tuple[StateDict, float]:
    """``old + clip(new - old)`` for the floating-point tensors; other tensors as in ``new``.

    Returns the clipped state and the update norm before clipping (floating-point tensors only).
    """
    keys = [k for k in new if torch.is_floating_point(new[k])]
    update = [(new[k].detach().double() - old[k].detach().double()).numpy() for k in keys]
    clipped, norm = clip_update(update, bound)
    state = dict(new)
    for key, delta in zip(keys, clipped, strict=True):
        state[key] = (old[key].double() + torch.from_numpy(delta)).to(new[key].dtype)
    return state, norm
