"""Medication-recommendation metrics as defined by GAMENet and SafeDrug.

Jaccard, precision, recall and F1 are computed per visit (drug sets) and averaged over visits;
PR-AUC is the per-visit average precision of the drug scores, averaged over visits; the DDI rate
is pooled over all visits: interacting recommended pairs / all recommended pairs.
References: Shang et al., "GAMENet: Graph Augmented MEmory Networks for Recommending Medication
Combination", AAAI 2019 (``multi_label_metric``, ``ddi_rate_score``); Yang et al., "SafeDrug", IJCAI 2021.
"""

from __future__ import annotations

import csv
import itertools
import logging
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

logger = logging.getLogger(__name__)

DrugPair = frozenset[str]
_COLUMNS = ("drug_a", "drug_b", "severity", "description")


def set_metrics(
    true_sets: Sequence[Collection[str]], pred_sets: Sequence[Collection[str]]
) -> dict[str, float]:
    """Visit-averaged Jaccard, precision, recall and F1 of recommended vs prescribed drug sets.

    Per visit: Jaccard = |T & P| / |T | P|, precision = |T & P| / |P|, recall = |T & P| / |T|,
    F1 = 2PR / (P + R); each is 0 when its denominator is 0 (GAMENet convention), and F1 is
    the mean of the per-visit F1s (not the F1 of the mean precision and recall).

    Visits with no prescription at all are skipped, as in :func:`pr_auc` (GAMENet's MIMIC
    visits always have one; a chest-CT visit often has none, and scoring those would reward or
    punish recommending nothing rather than recommending well). All NaN when no visit is left.

    Parameters
    ----------
    true_sets, pred_sets : Sequence[Collection[str]]
        Prescribed and recommended drugs of each visit, paired by position.

    Returns
    -------
    dict[str, float]
        Keys ``jaccard``, ``precision``, ``recall``, ``f1``.
    """
    if len(true_sets) != len(pred_sets) or not true_sets:
        raise ValueError(f"need equal, non-zero numbers of visits, got {len(true_sets)} and {len(pred_sets)}")
    sums = dict.fromkeys(("jaccard", "precision", "recall", "f1"), 0.0)
    skipped = 0
    for truth_items, pred_items in zip(true_sets, pred_sets):
        truth, pred = set(truth_items), set(pred_items)
        if not truth:
            skipped += 1
            continue
        inter, union = len(truth & pred), len(truth | pred)
        precision = inter / len(pred) if pred else 0.0
        recall = inter / len(truth) if truth else 0.0
        sums["jaccard"] += inter / union if union else 0.0
        sums["precision"] += precision
        sums["recall"] += recall
        sums["f1"] += 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    if skipped:
        logger.warning("medication set metrics skip %d visit(s) without a prescribed drug", skipped)
    scored = len(true_sets) - skipped
    return {k: v / scored if scored else math.nan for k, v in sums.items()}


def pr_auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Mean over visits of the average precision of the drug scores (GAMENet ``precision_auc``).

    Parameters
    ----------
    y_true : array-like of shape (n_visits, n_drugs)
        0/1 prescribed drugs.
    y_score : array-like of shape (n_visits, n_drugs)
        Recommendation scores.

    Returns
    -------
    float
        Mean average precision; visits without any prescribed drug are skipped (AP undefined),
        NaN when no visit is left.
    """
    from sklearn.metrics import average_precision_score  # seconds to import: only needed here

    truth, score = np.asarray(y_true, dtype=float), np.asarray(y_score, dtype=float)
    if truth.shape != score.shape or truth.ndim != 2:
        raise ValueError(f"y_true and y_score must be 2-D of equal shape, got {truth.shape} and {score.shape}")
    keep = truth.sum(axis=1) > 0
    if not keep.all():
        logger.warning("PR-AUC skips %d visit(s) without a prescribed drug", int((~keep).sum()))
    values = [average_precision_score(t, s) for t, s in zip(truth[keep], score[keep])]
    return float(np.mean(values)) if values else math.nan


def interaction_pairs(pairs: Iterable[Sequence[str]]) -> frozenset[DrugPair]:
    """Unordered drug pairs from rows whose first two items are two drug names."""
    out = set()
    for row in pairs:
        if len(row) < 2 or row[0] == row[1]:
            raise ValueError(f"an interaction needs two different drugs, got {tuple(row)!r}")
        out.add(frozenset((row[0].strip().lower(), row[1].strip().lower())))
    return frozenset(out)


def load_interaction_table(path: Path) -> dict[DrugPair, tuple[str, str]]:
    """Read ``reference/drug_interactions.csv`` (docs/contracts.md section 3) with its details.

    Parameters
    ----------
    path : pathlib.Path
        CSV with columns ``drug_a,drug_b,severity,description``.

    Returns
    -------
    dict[frozenset[str], tuple[str, str]]
        Unordered lower-case pair -> (severity, description), in file order.

    Raises
    ------
    ValueError
        If the columns differ or a row names the same drug twice.
    """
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != _COLUMNS:
            raise ValueError(f"{path}: expected columns {','.join(_COLUMNS)}, got {reader.fieldnames}")
        rows = list(reader)
    table: dict[DrugPair, tuple[str, str]] = {}
    for row in rows:
        (pair,) = interaction_pairs([(row["drug_a"], row["drug_b"])])
        table[pair] = (row["severity"].strip(), row["description"].strip())
    return table


def load_interactions(path: Path, *, severities: Collection[str] | None = None) -> frozenset[DrugPair]:
    """Read ``reference/drug_interactions.csv`` (docs/contracts.md section 3) as unordered pairs.

    Parameters
    ----------
    path : pathlib.Path
        CSV with columns ``drug_a,drug_b,severity,description``.
    severities : Collection[str] | None
        Keep only these severities, e.g. ``{"major"}`` (default: None = all rows).
    """
    return frozenset(pair for pair, (severity, _) in load_interaction_table(path).items()
                     if severities is None or severity in severities)


def ddi_rate(pred_sets: Iterable[Collection[str]], interactions: Collection[DrugPair]) -> float:
    """Share of recommended drug pairs that interact, pooled over visits (GAMENet ``ddi_rate_score``).

    Parameters
    ----------
    pred_sets : Iterable[Collection[str]]
        Recommended drugs of each visit.
    interactions : Collection[frozenset[str]]
        Unordered interacting pairs (:func:`load_interactions`, :func:`interaction_pairs`).

    Returns
    -------
    float
        Interacting pairs / all unordered pairs within visits; 0 when no visit has two drugs.
    """
    pairs = interacting = 0
    for visit in pred_sets:
        for a, b in itertools.combinations(sorted({d.strip().lower() for d in visit}), 2):
            pairs += 1
            interacting += frozenset((a, b)) in interactions
    return interacting / pairs if pairs else 0.0


_SEVERITY_ORDER = {"major": 0, "moderate": 1, "minor": 2}


def interaction_warnings(
    recommended: Sequence[str], current: Sequence[str], table: Mapping[DrugPair, tuple[str, str]],
) -> list[str]:
    """Known interactions of the recommended drugs, with each other and with current medications.

    Parameters
    ----------
    recommended : Sequence[str]
        Drugs the draft recommends.
    current : Sequence[str]
        The patient's current medications (clinical record). A name followed by a dose
        ("amoxicillin 500 mg") counts as the drug of the table it starts with.
    table : Mapping[frozenset[str], tuple[str, str]]
        Pair -> (severity, description), :func:`client_site.clinical_metrics.load_interaction_table`.

    Returns
    -------
    list[str]
        ``"a + b (severity; context): description"``, major interactions first; each pair once.
    """
    rec = list(dict.fromkeys(_drug_name(d, table) for d in recommended if d.strip()))
    cur = list(dict.fromkeys(_drug_name(d, table) for d in current if d.strip()))
    found: list[tuple[int, str]] = []
    seen: set[DrugPair] = set()
    for i, drug in enumerate(rec):
        candidates = [(other, "both recommended") for other in rec[i + 1:]]
        candidates += [(other, "recommended with current medication") for other in cur]
        for other, context in candidates:
            pair = frozenset((drug, other))
            if len(pair) < 2 or pair in seen or pair not in table:
                continue
            seen.add(pair)
            severity, description = table[pair]
            found.append((_SEVERITY_ORDER.get(severity, len(_SEVERITY_ORDER)),
                          f"{drug} + {other} ({severity}; {context}): {description}"))
    return [text for _, text in sorted(found, key=lambda t: t[0])]


def _drug_name(text: str, table: Mapping[DrugPair, tuple[str, str]]) -> str:
    """Lower-case drug name of ``text``; "warfarin 5 mg" -> "warfarin" when the table knows warfarin."""
    name = " ".join(text.lower().split())
    known = {drug for pair in table for drug in pair}
    return next((d for d in sorted(known, key=len, reverse=True) if name.startswith(d + " ")), name)
