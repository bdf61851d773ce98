"""Fixed feature vector of a study's clinical record: labs, demographics, symptoms, current drugs.

Nothing here is fitted on site data: the transforms, imputation values and the hashing of the
free-text symptoms are constants shipped with the code, so every site computes the same map
and no scaler or vocabulary learned from a hospital's records leaves it (such a fitted
artefact would be a release that DP-SGD does not cover, see docs/privacy.md).

Layout of the vector (:data:`NUM_CLINICAL_FEATURES` = 10 + :data:`TEXT_BUCKETS` + ``len(FORMULARY)``
floats):

====  =========================  ======================================================
idx   name                       value
====  =========================  ======================================================
0     ``log1p_wbc``              ``log1p(WBC 10^9/L)``
1     ``log1p_crp``              ``log1p(CRP mg/L)``
2     ``log1p_procalcitonin``    ``log1p(PCT ng/mL)``, 0 when not ordered
3     ``procalcitonin_missing``  1 when PCT was not ordered (its absence is informative)
4     ``spo2_deficit``           ``(100 - SpO2 %) / 10``, clipped to [0, 10]
5     ``eosinophils``            eosinophils 10^9/L
6     ``age``                    age in years / 100
7-8   ``sex_male, sex_female``   one-hot (both 0 when unknown)
9     ``has_clinical``           1 when the study has a clinical record
10-   text buckets               hashed bag of words and character bigrams of the symptoms
74-   current medications        1 for each formulary drug the patient already takes
====  =========================  ======================================================

Missing labs other than procalcitonin and a missing age are imputed with the fixed adult
reference values of :data:`LAB_REFERENCE` and :data:`AGE_REFERENCE_YEARS` (mid normal range).
A study without a record gets the all-zero vector (``has_clinical`` = 0).

Symptom text, any language: NFKC-normalised, lower-cased, split into ``\\w+`` runs; each run
contributes itself and its character bigrams, so Chinese (no spaces) and English get
sub-word features alike with no segmenter. Features are hashed with CRC-32 (stable across
processes and machines, unlike Python's salted ``hash``) into :data:`TEXT_BUCKETS` buckets
(the hashing trick: Weinberger et al., "Feature hashing for large scale multitask learning",
ICML 2009); the binary bucket vector is L2-normalised.

Current medications (taken before the visit,
:func:`~client_site.downstream.medication_task.current_medications`): one 0/1 entry per drug of
the consortium formulary :data:`~client_site.reference.formulary.FORMULARY`, in its order; a drug
outside it is not represented.
"""

from __future__ import annotations

import math
import re
import unicodedata
import zlib
from collections.abc import Iterable, Mapping
from typing import Any, Final

import torch

from client_site.downstream.medication_task import current_medications
from client_site.reference.formulary import FORMULARY

LAB_REFERENCE: Final[Mapping[str, float]] = {
    "wbc": 7.0,  # 10^9/L, adult normal 4-11
    "crp": 3.0,  # mg/L, normal < 5-10
    "spo2": 97.0,  # %, normal 95-100
    "eosinophils": 0.2,  # 10^9/L, normal 0.0-0.5
}
"""Imputation values of missing labs (procalcitonin has a missing indicator instead)."""

AGE_REFERENCE_YEARS: Final = 50.0
"""Imputed age when the record has none or an unreadable one."""

NUMERIC_FEATURES: Final[tuple[str, ...]] = (
    "log1p_wbc", "log1p_crp", "log1p_procalcitonin", "procalcitonin_missing", "spo2_deficit",
    "eosinophils", "age", "sex_male", "sex_female", "has_clinical",
)
"""Names of the first ``len(NUMERIC_FEATURES)`` entries of the vector."""

TEXT_BUCKETS: Final = 64
"""Hash buckets of the symptom text."""

NUM_CLINICAL_FEATURES: Final = len(NUMERIC_FEATURES) + TEXT_BUCKETS + len(FORMULARY)
"""Length of :func:`clinical_features`."""

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dwmy]?)\s*$", re.IGNORECASE)
_AGE_UNIT_PER_YEAR: Final = {"": 1.0, "y": 1.0, "m": 12.0, "w": 52.1775, "d": 365.25}  # DICOM AS
_MALE: Final = ("m", "male", "man", "男")
_FEMALE: Final = ("f", "female", "woman", "女")
_WORD = re.compile(r"\w+")


def clinical_features(clinical: Mapping[str, Any] | None) -> torch.Tensor:
    """The fixed feature vector of one clinical record (see the module docstring).

    Parameters
    ----------
    clinical : Mapping or None
        ``StudyRecord.clinical``: ``{"age", "sex", "symptoms", "labs": {wbc, crp,
        procalcitonin, spo2, eosinophils}, "current_medications", "medications"}``; any field may
        be missing or None (the prescriptions of the visit are never read: they are the target).

    Returns
    -------
    torch.Tensor
        ``(NUM_CLINICAL_FEATURES,)`` float32; all zeros when ``clinical`` is None.
    """
    out = torch.zeros(NUM_CLINICAL_FEATURES, dtype=torch.float32)
    if clinical is None:
        return out
    labs = clinical.get("labs") or {}

    def lab(name: str) -> float:
        value = _number(labs.get(name))
        return LAB_REFERENCE[name] if value is None else value

    pct = _number(labs.get("procalcitonin"))
    sex = str(clinical.get("sex") or "").strip().lower()
    out[: len(NUMERIC_FEATURES)] = torch.tensor([
        math.log1p(max(lab("wbc"), 0.0)),
        math.log1p(max(lab("crp"), 0.0)),
        0.0 if pct is None else math.log1p(max(pct, 0.0)),
        1.0 if pct is None else 0.0,
        min(max((100.0 - lab("spo2")) / 10.0, 0.0), 10.0),
        max(lab("eosinophils"), 0.0),
        age_years(clinical.get("age")) / 100.0,
        1.0 if sex in _MALE else 0.0,
        1.0 if sex in _FEMALE else 0.0,
        1.0,
    ])
    text_end = len(NUMERIC_FEATURES) + TEXT_BUCKETS
    out[len(NUMERIC_FEATURES):text_end] = symptom_features(clinical.get("symptoms") or ())
    taken = set(current_medications(clinical, FORMULARY))
    out[text_end:] = torch.tensor([1.0 if drug in taken else 0.0 for drug in FORMULARY])
    return out


def symptom_features(symptoms: Iterable[str], *, buckets: int = TEXT_BUCKETS) -> torch.Tensor:
    """L2-normalised binary bag of hashed words and character bigrams, ``(buckets,)`` float32.

    Independent of the order of ``symptoms`` and of any other record; all zeros for no text.
    """
    hit = torch.zeros(buckets, dtype=torch.float32)
    for feature in {f for text in symptoms for f in _text_features(str(text))}:
        hit[zlib.crc32(feature.encode("utf-8")) % buckets] = 1.0
    norm = hit.norm()
    return hit / norm if norm > 0 else hit


def age_years(age: object) -> float:
    """Age in years from a number or a DICOM-AS-like string (``"067Y"``, ``"18M"``); imputed
    with :data:`AGE_REFERENCE_YEARS` when missing or unreadable."""
    number = _number(age)
    if number is not None:
        return number
    match = _AGE.match(age) if isinstance(age, str) else None
    if match is None:
        return AGE_REFERENCE_YEARS
    return float(match.group(1)) / _AGE_UNIT_PER_YEAR[match.group(2).lower()]


def _text_features(text: str) -> list[str]:
    """``w:<run>`` for each ``\\w+`` run and ``b:<bigram>`` for each character bigram in it."""
    out = []
    for run in _WORD.findall(unicodedata.normalize("NFKC", text).lower()):
        out.append(f"w:{run}")
        out.extend(f"b:{run[i:i + 2]}" for i in range(len(run) - 1))
    return out


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
