"""The text parts of a clinician draft: cleaned findings, impression, drug-interaction warnings.

Pure functions of the model's outputs; :mod:`client_site.downstream.drafts` runs the model.
Finding names come from the consortium's extractor vocabulary
(:func:`~client_site.clinical_metrics.finding_term`), so the extractor reads a drafted impression
back as exactly the findings it lists; the "normal" impressions are the phrases of the
consortium's reports.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

from client_site.clinical_metrics import detect_language, finding_term

DrugPair = frozenset[str]

FINDING_THRESHOLD = 0.5
"""Default diagnosis probability from which the impression lists a finding."""

NORMAL_IMPRESSION = {"en": "No acute cardiopulmonary abnormality.", "zh": "胸部CT平扫未见明显异常。"}
"""Impression when no finding reaches the threshold, per language."""

# The findings section of a report body (docs/contracts.md section 2), up to the impression.
_FINDINGS_SECTION = {
    "en": re.compile(r"FINDINGS\s*:(.*?)(?:IMPRESSION\s*:|$)", re.IGNORECASE | re.DOTALL),
    "zh": re.compile(r"检查所见\s*[:：](.*?)(?:诊断意见\s*[:：]|$)", re.DOTALL),
}
# A sentence ends at "." (not inside a number such as 2.5 or after a list number "1."),
# at CJK or other terminal punctuation, or at the end of the line.
_SENTENCE = re.compile(r"[^\n]*?(?:(?<!\d)\.(?!\d)|[。！？!?]|$)")
_SEVERITY_ORDER = {"major": 0, "moderate": 1, "minor": 2}


def clean_findings_text(generated: str, language: str) -> str:
    """The findings section of a generated report, cleaned for a clinician to edit.

    Keeps the part after ``FINDINGS:`` / ``检查所见：`` up to ``IMPRESSION:`` / ``诊断意见：`` (the
    whole text when there is no such heading; the impression is drafted separately), drops
    undecodable bytes (U+FFFD) and control characters, collapses white space and removes repeated
    sentences (greedy decoding tends to loop), keeping the first occurrence of each.

    Parameters
    ----------
    generated : str
        Decoded report text (:meth:`client_site.tokenizer.ReportTokenizer.decode`).
    language : str
        ``"en"`` or ``"zh"``; Chinese sentences are joined without spaces.
    """
    match = _FINDINGS_SECTION["zh" if language == "zh" else "en"].search(generated)
    body = match.group(1) if match else generated
    body = "".join(ch for ch in body if ch == "\n" or (ch != "\ufffd" and not unicodedata.category(ch).startswith("C")))
    seen: set[str] = set()
    kept: list[str] = []
    for line in body.splitlines():
        for sentence in _SENTENCE.findall(line):
            text = " ".join(sentence.split())
            if text and text.casefold() not in seen:
                seen.add(text.casefold())
                kept.append(text)
    return ("" if language == "zh" else " ").join(kept)


def draft_language(study_language: str | None, generated: str) -> str:
    """The draft's language: the study's when it is ``en`` or ``zh``, else that of the text."""
    if study_language in ("en", "zh"):
        return study_language
    return detect_language(generated) if generated else "en"


def draft_report(
    generated: str, probabilities: Mapping[str, float], language: str, *, threshold: float = FINDING_THRESHOLD,
) -> tuple[str, str]:
    """The draft's findings (:func:`clean_findings_text`) and impression (:func:`impression_text`)."""
    return clean_findings_text(generated, language), impression_text(probabilities, language, threshold=threshold)


def impression_text(probabilities: Mapping[str, float], language: str, *, threshold: float) -> str:
    """Numbered impression: each finding with probability >= ``threshold``, most probable first.

    Parameters
    ----------
    probabilities : Mapping[str, float]
        Finding (a name of ``FINDINGS``) -> predicted probability.
    language : str
        ``"en"`` or ``"zh"``.
    threshold : float
        Probability from which a finding is listed, in (0, 1).

    Returns
    -------
    str
        E.g. ``"1. Nodule (probability 0.82)."`` or ``"1. 结节（概率 0.82）。"``, one line per
        finding; :data:`NORMAL_IMPRESSION` when none is listed.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    found = sorted(((p, name) for name, p in probabilities.items() if p >= threshold), key=lambda t: -t[0])
    if not found:
        return NORMAL_IMPRESSION[language]
    lines = []
    for i, (p, name) in enumerate(found, start=1):
        term = finding_term(name, language)
        lines.append(f"{i}. {term}（概率 {p:.2f}）。" if language == "zh"
                     else f"{i}. {term[:1].upper()}{term[1:]} (probability {p:.2f}).")
    return "\n".join(lines)


def interaction_warnings(
    recommended: Sequence[str], current: Sequence[str], table: Mapping[DrugPair, tuple[str, str]],
) -> list[str]:
    """Known interactions of the recommended drugs, with each other and with current medications.

    Parameters
    ----------
    recommended : Sequence[str]
        Drugs the draft recommends.
    current : Sequence[str]
        The patient's current medications (clinical record).
    table : Mapping[frozenset[str], tuple[str, str]]
        Pair -> (severity, description), :func:`client_site.clinical_metrics.load_interaction_table`.

    Returns
    -------
    list[str]
        ``"a + b (severity; context): description"``, major interactions first; each pair once.
    """
    rec = list(dict.fromkeys(d.strip().lower() for d in recommended if d.strip()))
    cur = list(dict.fromkeys(d.strip().lower() for d in current if d.strip()))
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
