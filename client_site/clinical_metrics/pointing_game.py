"""Pointing game for saliency maps (Zhang et al., "Top-down Neural Attention by Excitation
Backprop", ECCV 2016): a hit when the map's maximum falls inside the lesion mask."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

logger = logging.getLogger(__name__)


def pointing_hit(saliency: ArrayLike, mask: ArrayLike, *, tolerance: int = 0) -> bool:
    """Whether the argmax of ``saliency`` lies within ``tolerance`` voxels of ``mask``.

    Parameters
    ----------
    saliency : array-like, any shape (e.g. (slices, rows, cols))
        Saliency or attention map on the mask's voxel grid. Ties: the first maximum in C order.
    mask : array-like of bool, same shape
        Lesion mask; must contain at least one voxel.
    tolerance : int
        Chebyshev distance in voxels (default: 0 = the voxel itself must be in the mask); a hit
        when any mask voxel lies in the (2 * tolerance + 1)^ndim cube around the argmax.

    Raises
    ------
    ValueError
        On a shape mismatch, an empty mask, a negative tolerance or a non-finite saliency map.
    """
    sal, lesion = np.asarray(saliency, dtype=float), np.asarray(mask, dtype=bool)
    if sal.shape != lesion.shape:
        raise ValueError(f"saliency and mask shapes differ: {sal.shape} vs {lesion.shape}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 voxels, got {tolerance}")
    if not lesion.any():
        raise ValueError("mask is empty; the pointing game is defined only for cases with a lesion")
    if not np.isfinite(sal).all():
        raise ValueError("saliency map contains NaN or inf")
    peak = np.unravel_index(int(np.argmax(sal)), sal.shape)
    window = tuple(slice(max(p - tolerance, 0), p + tolerance + 1) for p in peak)
    return bool(lesion[window].any())


def pointing_game(
    saliencies: Sequence[ArrayLike], masks: Sequence[ArrayLike | None], *, tolerance: int = 0
) -> float:
    """Hits / cases with a lesion; cases whose mask is None or empty are skipped.

    Parameters
    ----------
    saliencies : Sequence[array-like]
        One saliency map per case.
    masks : Sequence[array-like | None]
        The matching lesion masks (None or all-False: no lesion, not scored).
    tolerance : int
        See :func:`pointing_hit` (default: 0 voxels).

    Returns
    -------
    float
        Score in [0, 1]; NaN when no case has a lesion.
    """
    if len(saliencies) != len(masks):
        raise ValueError(f"need one mask per saliency map, got {len(saliencies)} and {len(masks)}")
    hits = scored = 0
    for sal, mask in zip(saliencies, masks):
        if mask is None or not np.asarray(mask, dtype=bool).any():
            continue
        scored += 1
        hits += pointing_hit(sal, mask, tolerance=tolerance)
    if scored == 0:
        logger.warning("pointing game: no case with a lesion among %d", len(masks))
        return math.nan
    return hits / scored
