"""Clinical efficacy of generated reports: finding-level F1 through the rule-based extractor."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from client_site.findings import FINDINGS

from .extractor import findings_vector


def _f1(tp: float, fp: float, fn: float) -> float:
    """F1 = 2TP / (2TP + FP + FN); NaN when the finding is absent from both sides (0/0)."""
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else math.nan


def label_f1(y_true: ArrayLike, y_pred: ArrayLike, *, names: Sequence[str] = FINDINGS) -> dict[str, float]:
    """Per-label, micro and macro F1 of 0/1 label matrices.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_cases, n_labels)
        0/1 reference and predicted labels, columns in ``names`` order.
    names : Sequence[str]
        Column names (default: ``FINDINGS``).

    Returns
    -------
    dict[str, float]
        ``{name: F1}`` for each label (NaN when it is absent from both sides), plus ``"micro"``
        (pooled TP/FP/FN over all labels) and ``"macro"`` (mean of the defined per-label F1s).

    Raises
    ------
    ValueError
        If the shapes differ or are not (n_cases, len(names)).
    """
    truth = np.asarray(y_true, dtype=bool)
    pred = np.asarray(y_pred, dtype=bool)
    if truth.shape != pred.shape or truth.ndim != 2 or truth.shape[1] != len(names):
        raise ValueError(f"y_true and y_pred must both have shape (n_cases, {len(names)}), "
                         f"got {truth.shape} and {pred.shape}")
    tp = (truth & pred).sum(axis=0)
    fp = (~truth & pred).sum(axis=0)
    fn = (truth & ~pred).sum(axis=0)
    out = {name: _f1(tp[j], fp[j], fn[j]) for j, name in enumerate(names)}
    defined = [out[name] for name in names if not math.isnan(out[name])]
    out["micro"] = _f1(tp.sum(), fp.sum(), fn.sum())
    out["macro"] = float(np.mean(defined)) if defined else math.nan
    return {k: float(v) for k, v in out.items()}


def report_finding_f1(
    generated: Sequence[str], references: Sequence[str], *, language: str | None = None
) -> dict[str, float]:
    """Finding-level F1 of generated vs reference reports, both read by ``extract_findings``.

    Parameters
    ----------
    generated, references : Sequence[str]
        Report texts, paired by position.
    language : str | None
        Passed to the extractor (default: None = detected per text).

    Returns
    -------
    dict[str, float]
        As :func:`label_f1`: per finding, ``"micro"`` and ``"macro"``.
    """
    if len(generated) != len(references) or not generated:
        raise ValueError(f"need equal, non-zero numbers of generated and reference reports, "
                         f"got {len(generated)} and {len(references)}")
    pred = [findings_vector(text, language) for text in generated]
    truth = [findings_vector(text, language) for text in references]
    return label_f1(truth, pred)
