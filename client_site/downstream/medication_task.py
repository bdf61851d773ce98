"""What the medication recommender is asked: the drugs to prescribe at this visit.

A clinical record lists the patient's ``current_medications`` (taken before the visit) and the
``medications`` prescribed at the visit (docs/contracts.md section 3). A recommender should
recommend what to prescribe now: the current medications are an INPUT (a clinician reads them,
and the interaction check needs them), not something to guess blind. So

* the target of a visit is :func:`prescribed_now`: its prescriptions minus the drugs the patient
  already takes (a site whose ``medications`` column repeats the current list gets the same task);
* the current medications enter the medication head's features
  (:func:`~client_site.downstream.clinical_features.clinical_features`) and the selection, which
  never recommends a drug already taken nor one with a major interaction with it
  (:func:`~client_site.downstream.drug_graph.select_drugs`);
* the DDI rate is that of the regimen the patient ends up on (:func:`regimen`: recommended or
  prescribed drugs plus the current ones), for the recommendation and the prescriptions on file alike.

This module is the one definition that training (:mod:`~client_site.downstream.data`), the
thresholds (:mod:`~client_site.downstream.calibration`), the drafts and every evaluation use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def drug_names(values: Iterable[object], known: Sequence[str] = ()) -> list[str]:
    """Lower-case, de-duplicated drug names in order; "warfarin 5 mg" -> "warfarin" when ``known``
    holds warfarin (the longest known name a value starts with, followed by a space)."""
    by_length = sorted(known, key=len, reverse=True)
    out: list[str] = []
    for value in values:
        name = " ".join(str(value).lower().split())
        name = next((d for d in by_length if name.startswith(d + " ")), name)
        if name and name not in out:
            out.append(name)
    return out


def current_medications(clinical: Mapping[str, Any] | None, known: Sequence[str] = ()) -> list[str]:
    """Drugs the patient takes before the visit (empty without a record or the column)."""
    return drug_names((clinical or {}).get("current_medications") or (), known)


def prescribed_now(clinical: Mapping[str, Any] | None, known: Sequence[str] = ()) -> list[str]:
    """The visit's target: its prescriptions that the patient does not already take."""
    current = set(current_medications(clinical, known))
    return [d for d in drug_names((clinical or {}).get("medications") or (), known) if d not in current]


def regimen(drugs: Iterable[str], clinical: Mapping[str, Any] | None, known: Sequence[str] = ()) -> list[str]:
    """``drugs`` added to the current medications: what the patient takes after the visit."""
    return drug_names([*current_medications(clinical, known), *drugs], known)
