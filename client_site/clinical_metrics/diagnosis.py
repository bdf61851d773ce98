"""Multi-label diagnosis metrics: per-finding ROC AUC and their macro average."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from client_site.findings import FINDINGS

logger = logging.getLogger(__name__)


def _as_2d(name: str, values: ArrayLike, n_labels: int) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 2 or array.shape[1] != n_labels:
        raise ValueError(f"{name} must have shape (n_cases, {n_labels}), got {array.shape}")
    return array


def _checked(y_true: ArrayLike, y_score: ArrayLike, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Truth and scores as (n_cases, n_labels) arrays of the same shape, truth 0/1 only."""
    truth = _as_2d("y_true", y_true, n_labels)
    score = _as_2d("y_score", y_score, n_labels)
    if truth.shape != score.shape:
        raise ValueError(f"y_true and y_score shapes differ: {truth.shape} vs {score.shape}")
    if not np.isin(truth, (0.0, 1.0)).all():
        raise ValueError("y_true must hold only 0 and 1")
    return truth, score


def per_finding_auc(
    y_true: ArrayLike, y_score: ArrayLike, *, names: Sequence[str] = FINDINGS
) -> dict[str, float]:
    """ROC AUC of each finding (column); NaN where the truth holds a single class.

    Parameters
    ----------
    y_true : array-like of shape (n_cases, n_findings)
        0/1 truth, columns in ``names`` order.
    y_score : array-like of shape (n_cases, n_findings)
        Scores (probabilities or logits; only their order matters).
    names : Sequence[str]
        Column names (default: ``FINDINGS``).

    Returns
    -------
    dict[str, float]
        Finding name -> AUC in [0, 1], or NaN when the column has only positives or only negatives.

    Raises
    ------
    ValueError
        If the shapes differ from (n_cases, len(names)) or the truth is not 0/1.
    """
    from sklearn.metrics import roc_auc_score  # seconds to import: only where AUCs are computed

    truth, score = _checked(y_true, y_score, len(names))
    out: dict[str, float] = {}
    for j, name in enumerate(names):
        if np.unique(truth[:, j]).size < 2:
            logger.debug("AUC of %s undefined: single class in %d cases", name, truth.shape[0])
            out[name] = math.nan
        else:
            out[name] = float(roc_auc_score(truth[:, j], score[:, j]))
    return out


def per_finding_roc(
    y_true: ArrayLike, y_score: ArrayLike, *, names: Sequence[str] = FINDINGS
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """ROC curve of each finding whose truth holds both classes: ``(fpr, tpr)``.

    The points are those :func:`per_finding_auc` integrates (``sklearn.metrics.roc_curve``,
    collinear points dropped), so the trapezoid area under them is that finding's AUC. A curve
    starts at (0, 0), ends at (1, 1) and never decreases. Shapes and truth as in
    :func:`per_finding_auc`; a single-class finding has no curve.
    """
    from sklearn.metrics import roc_curve

    truth, score = _checked(y_true, y_score, len(names))
    curves = {}
    for j, name in enumerate(names):
        if np.unique(truth[:, j]).size == 2:
            fpr, tpr, _ = roc_curve(truth[:, j], score[:, j])
            curves[name] = (fpr, tpr)
    return curves


def macro_auc(per_finding: dict[str, float]) -> float:
    """Mean of the defined (non-NaN) per-finding AUCs; NaN when none is defined."""
    defined = [v for v in per_finding.values() if not math.isnan(v)]
    if len(defined) < len(per_finding):
        logger.warning("macro AUC over %d of %d findings (the others have a single class)",
                       len(defined), len(per_finding))
    return float(np.mean(defined)) if defined else math.nan
