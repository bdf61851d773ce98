"""A small keyword extractor: which FINDINGS a report's findings section asserts (English and Chinese).

Only the findings section is read (``FINDINGS:`` up to ``IMPRESSION:``; ``检查所见：`` up to
``诊断意见：``; the whole body when there is no such heading). It is split into clauses; a finding
counts as present if one of its keywords occurs in a clause that does not negate it -- a negation cue
("no", "without", "negative for", "resolution of"; 未见, 无, 没有, 排除) before the keyword, or a
resolution cue ("resolved"; 吸收, 消失) after it. This is an aggregate data-QA signal, not a labeller.
"""

from __future__ import annotations

import re

from client_site.findings import FINDINGS

KEYWORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "nodule": ("nodule", "nodules", "nodular opacity"),
        "consolidation": ("consolidation", "consolidations", "airspace opacity"),
        "ground_glass_opacity": ("ground-glass", "ground glass"),
        "emphysema": ("emphysema", "emphysematous"),
        "pleural_effusion": ("pleural effusion", "pleural effusions", "effusion", "effusions"),
    },
    "zh": {
        "nodule": ("结节",),
        "consolidation": ("实变",),
        "ground_glass_opacity": ("磨玻璃",),
        "emphysema": ("肺气肿",),
        "pleural_effusion": ("胸腔积液", "积液"),
    },
}
_NEGATION_BEFORE = {
    "en": re.compile(r"\b(no|not|without|negative for|free of|resolution of|resolved|absent|absence of)\b",
                     re.IGNORECASE),
    "zh": re.compile(r"(未见|未发现|无|没有|排除|未显示)"),
}
_NEGATION_AFTER = {
    "en": re.compile(r"\b(resolved|has resolved|no longer seen|not seen|absent)\b", re.IGNORECASE),
    "zh": re.compile(r"(吸收|消失|未见)"),
}
_CLAUSES = {"en": re.compile(r"[.;\n]+|,\s+(?:but|and)\s+"), "zh": re.compile(r"[。；;，,\n]+")}
_SECTION = {
    "en": re.compile(r"FINDINGS\s*:(.*?)(?:IMPRESSION\s*:|CONCLUSION\s*:|$)", re.IGNORECASE | re.DOTALL),
    "zh": re.compile(r"(?:检查所见|影像所见)\s*[:：](.*?)(?:诊断意见|印象|影像诊断)\s*[:：]|(?:检查所见|影像所见)\s*[:：](.*)$",
                     re.DOTALL),
}


def findings_section(body: str, language: str) -> str:
    """The findings part of a report body (the whole body when it has no findings heading)."""
    match = _SECTION["zh" if language == "zh" else "en"].search(body)
    if not match:
        return body
    return next((g for g in match.groups() if g is not None), body)


def extract_findings(body: str, language: str | None) -> dict[str, bool]:
    """Finding name -> asserted in the findings section, for every name in ``FINDINGS``.

    Parameters
    ----------
    body : str
        Report body (already scrubbed).
    language : str | None
        ``en`` or ``zh``; None or anything else is read as English.
    """
    lang = "zh" if language == "zh" else "en"
    section = findings_section(body, lang)
    found = dict.fromkeys(FINDINGS, False)
    for clause in _CLAUSES[lang].split(section):
        text = clause if lang == "zh" else clause.lower()
        for name in FINDINGS:
            if found[name]:
                continue
            for keyword in KEYWORDS[lang][name]:
                at = _find(text, keyword, lang)
                if at < 0:
                    continue
                if _NEGATION_BEFORE[lang].search(text[:at]) or _NEGATION_AFTER[lang].search(text[at + len(keyword):]):
                    continue
                found[name] = True
                break
    return found


def _find(text: str, keyword: str, lang: str) -> int:
    if lang == "zh":
        return text.find(keyword)
    match = re.search(rf"(?<![a-z]){re.escape(keyword)}(?![a-z])", text)
    return match.start() if match else -1
