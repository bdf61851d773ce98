"""The text parts of a clinician draft: language and impression.

Pure functions of the model's outputs; :mod:`client_site.downstream.drafts` runs the model and
:mod:`client_site.downstream.draft_grammar` writes the findings. Finding names come from the
consortium's extractor vocabulary (:func:`~client_site.clinical_metrics.finding_term`), so the
extractor reads a drafted impression back as exactly the findings it lists; the "normal"
impressions are the phrases of the consortium's reports. Interaction warnings are
:func:`client_site.clinical_metrics.interaction_warnings` (one function for drafts and the case
viewer).
"""

from __future__ import annotations

from collections.abc import Mapping

from client_site.clinical_metrics import finding_term

NORMAL_IMPRESSION = {"en": "No acute cardiopulmonary abnormality.", "zh": "胸部CT平扫未见明显异常。"}
"""Impression when no finding reaches the threshold, per language."""


def draft_language(study_language: str | None) -> str:
    """The draft's language: the study's when it is ``en`` or ``zh``, else English."""
    return study_language if study_language in ("en", "zh") else "en"


def impression_text(probabilities: Mapping[str, float], language: str, *, thresholds: Mapping[str, float]) -> str:
    """Numbered impression: each finding with probability >= its threshold, most probable first.

    Parameters
    ----------
    probabilities : Mapping[str, float]
        Finding (a name of ``FINDINGS``) -> predicted probability.
    language : str
        ``"en"`` or ``"zh"``.
    thresholds : Mapping[str, float]
        Probability from which each finding is listed, in (0, 1)
        (:class:`~client_site.downstream.calibration.Calibration`).

    Returns
    -------
    str
        E.g. ``"1. Nodule (probability 0.82)."`` or ``"1. 结节（概率 0.82）。"``, one line per
        finding; :data:`NORMAL_IMPRESSION` when none is listed.
    """
    bad = {name: t for name, t in thresholds.items() if not 0.0 < t < 1.0}
    if bad:
        raise ValueError(f"thresholds must be in (0, 1), got {bad}")
    found = sorted(((p, name) for name, p in probabilities.items() if p >= thresholds[name]), key=lambda t: -t[0])
    if not found:
        return NORMAL_IMPRESSION[language]
    lines = []
    for i, (p, name) in enumerate(found, start=1):
        term = finding_term(name, language)
        lines.append(f"{i}. {term}（概率 {p:.2f}）。" if language == "zh"
                     else f"{i}. {term[:1].upper()}{term[1:]} (probability {p:.2f}).")
    return "\n".join(lines)
