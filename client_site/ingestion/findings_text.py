"""Which FINDINGS the findings section of a report asserts (English and Chinese), for data QA.

Only the findings section is read (``FINDINGS:`` up to ``IMPRESSION:``; ``检查所见：`` up to
``诊断意见：``; the whole body when there is no such heading), so a finding named only as a
conclusion or a recommendation is not counted twice or guessed at. The keyword and negation
rules are those of the consortium's rule-based extractor,
:func:`client_site.clinical_metrics.extract_findings` (NegEx-style: "no pleural effusion",
未见积液 and "interval resolution of the nodule" do not count), so QA prevalence and the
evaluation metrics read reports the same way. An aggregate data-QA signal, not a labeller.
"""

from __future__ import annotations

import re

_SECTION = {
    "en": re.compile(r"FINDINGS\s*:(.*?)(?:IMPRESSION\s*:|CONCLUSION\s*:|$)", re.IGNORECASE | re.DOTALL),
    "zh": re.compile(r"(?:检查所见|影像所见)\s*[:：](.*?)(?:(?:诊断意见|印象|影像诊断)\s*[:：]|$)", re.DOTALL),
}


def findings_section(body: str, language: str | None) -> str:
    """The findings part of a report body (the whole body when it has no findings heading)."""
    match = _SECTION["zh" if language == "zh" else "en"].search(body)
    return match.group(1) if match else body


def extract_findings(body: str, language: str | None) -> dict[str, bool]:
    """Finding name -> asserted in the findings section, for every name in ``FINDINGS``.

    Parameters
    ----------
    body : str
        Report body (already scrubbed).
    language : str | None
        ``en`` or ``zh``; anything else is detected per clause by the extractor.
    """
    # Imported here: client_site.clinical_metrics pulls in scikit-learn, which plain ingestion does not need.
    from client_site.clinical_metrics.extractor import extract_findings as affirmed

    lang = language if language in ("en", "zh") else None
    return affirmed(findings_section(body, lang), lang)
