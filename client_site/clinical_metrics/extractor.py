"""Rule-based finding extractor for English and Chinese chest-CT report text (NegEx-style).

The text is split into clauses (on ``. ; ， 。 ；``, newlines, and in English on ``, but`` /
``, however``). A finding is present when one of its synonyms occurs in a clause that does not
negate it: no negation cue before the synonym in the same clause ("no", "without", "negative for",
"resolution of"; 未见, 无, 没有, 未发现, 排除) and no resolution cue after it ("resolved", "no longer
seen"; 已吸收, 已基本吸收, 消失). Pseudo-negations ("no change", 无明显变化, 无壁) are masked first so
they do not negate. One affirmed mention anywhere in the text is enough (affirmation wins).

The whole text is read, header sections included; a finding named only in the impression counts.
Reference: Chapman et al., "A simple algorithm for identifying negated findings and diseases in
discharge summaries" (NegEx), J Biomed Inform 2001.
"""

from __future__ import annotations

import re

from client_site.findings import FINDINGS

# The first synonym of each finding is its canonical term (:func:`finding_term`).
_SYNONYMS_EN: dict[str, tuple[str, ...]] = {
    "nodule": ("nodule", "nodules", "nodular opacity", "nodular opacities"),
    "consolidation": ("consolidation", "consolidations", "consolidative", "airspace opacity"),
    "ground_glass_opacity": ("ground-glass opacity", "ground-glass", "ground glass", "ggo", "ggos"),
    "emphysema": ("emphysema", "emphysematous"),
    # "effusion" alone is read as pleural; a pericardial effusion is excluded below.
    "pleural_effusion": ("pleural effusion", "pleural effusions", "effusion", "effusions",
                         "hydrothorax"),
}
_SYNONYMS_ZH: dict[str, tuple[str, ...]] = {
    "nodule": ("结节",),
    "consolidation": ("实变",),
    "ground_glass_opacity": ("磨玻璃影", "磨玻璃", "毛玻璃"),
    "emphysema": ("肺气肿",),
    "pleural_effusion": ("胸腔积液", "胸水", "积液"),  # 心包积液 (pericardial) excluded below
}
_NOT_PLEURAL_EN = re.compile(r"pericardial\s+$")
_NOT_PLEURAL_ZH = re.compile(r"心包$")

_CJK = re.compile(r"[\u4e00-\u9fff]")
# "." ends a clause unless it sits between digits (2.5 cm) or right after one (list item "1.").
_CLAUSE_SPLIT = re.compile(r"(?<!\d)\.(?!\d)|[;；，。！？!?\n]|,\s+(?:but|however)\b", re.IGNORECASE)

_NEG_BEFORE_EN = re.compile(
    r"\b(?:no|without|negative\s+for|free\s+of|absence\s+of|resolution\s+of|resolved|"
    r"rule[sd]?\s+out|not\s+(?:seen|identified|present|demonstrated))\b",
    re.IGNORECASE,
)
_NEG_AFTER_EN = re.compile(
    r"\b(?:(?:has|have)\s+resolved|resolved|no\s+longer\s+(?:seen|visible|present)|"
    r"(?:is|are)\s+(?:not\s+seen|absent))\b",
    re.IGNORECASE,
)
_PSEUDO_EN = re.compile(
    r"\bno\s+(?:significant\s+|interval\s+)?(?:change|increase|decrease|growth)\b", re.IGNORECASE
)
_NEG_BEFORE_ZH = re.compile(r"未见|未发现|未显示|无|没有|排除|否认")
_NEG_AFTER_ZH = re.compile(r"已基本吸收|已吸收|已消失|基本消失|未见显示")
_PSEUDO_ZH = re.compile(r"无明显变化|无变化|无明显增大|无壁|无明显改变")


def detect_language(text: str) -> str:
    """``"zh"`` when the text contains any CJK ideograph, else ``"en"``."""
    return "zh" if _CJK.search(text) else "en"


def finding_term(name: str, language: str) -> str:
    """The canonical term of finding ``name`` in ``language``, e.g. for a drafted impression.

    Text that names a finding by this term, unnegated, is read back as that finding by
    :func:`extract_findings`.

    Raises
    ------
    ValueError
        If ``name`` is not in ``FINDINGS`` or ``language`` is not ``"en"`` or ``"zh"``.
    """
    if language not in ("en", "zh"):
        raise ValueError(f"language must be 'en' or 'zh', got {language!r}")
    if name not in FINDINGS:
        raise ValueError(f"unknown finding {name!r}; expected one of {FINDINGS}")
    return (_SYNONYMS_ZH if language == "zh" else _SYNONYMS_EN)[name][0]


def split_clauses(text: str) -> list[str]:
    """Clauses of ``text`` (split on ``. ; ， 。 ；``, newlines and ``, but``); empty ones dropped."""
    return [c.strip() for c in _CLAUSE_SPLIT.split(text) if c and c.strip()]


def _mentions(clause: str, synonym: str, zh: bool) -> list[int]:
    """Start offsets of ``synonym`` in ``clause`` (whole words in English)."""
    if zh:
        return [m.start() for m in re.finditer(re.escape(synonym), clause)]
    pattern = rf"(?<![a-z]){re.escape(synonym)}(?![a-z])"
    return [m.start() for m in re.finditer(pattern, clause, re.IGNORECASE)]


def _affirmed(clause: str, name: str, zh: bool) -> bool:
    """Whether ``clause`` mentions finding ``name`` without negating it."""
    synonyms = (_SYNONYMS_ZH if zh else _SYNONYMS_EN)[name]
    before, after = (_NEG_BEFORE_ZH, _NEG_AFTER_ZH) if zh else (_NEG_BEFORE_EN, _NEG_AFTER_EN)
    # Mask pseudo-negations with same-length filler so offsets stay valid.
    masked = (_PSEUDO_ZH if zh else _PSEUDO_EN).sub(lambda m: "_" * len(m.group()), clause)
    for synonym in synonyms:
        for at in _mentions(masked, synonym, zh):
            if name == "pleural_effusion" and (_NOT_PLEURAL_ZH if zh else _NOT_PLEURAL_EN).search(
                masked[:at].lower()
            ):
                continue
            if before.search(masked[:at]) or after.search(masked[at + len(synonym):]):
                continue
            return True
    return False


def extract_findings(text: str, language: str | None = None) -> dict[str, bool]:
    """Which FINDINGS a report text asserts.

    Parameters
    ----------
    text : str
        Report body (or any free text), English or Chinese.
    language : str | None
        ``"en"`` or ``"zh"``; None (default) detects it per clause (any CJK ideograph -> ``"zh"``).

    Returns
    -------
    dict[str, bool]
        Finding name -> affirmed, for every name in ``client_site.findings.FINDINGS``, in order.

    Raises
    ------
    TypeError
        If ``text`` is not a str.
    ValueError
        If ``language`` is not None, ``"en"`` or ``"zh"``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if language not in (None, "en", "zh"):
        raise ValueError(f"language must be None, 'en' or 'zh', got {language!r}")
    # Language per clause when not given, so an English report quoting a Chinese term still works.
    clauses = [(c, (language or detect_language(c)) == "zh") for c in split_clauses(text)]
    return {name: any(_affirmed(c, name, zh) for c, zh in clauses) for name in FINDINGS}


def findings_vector(text: str, language: str | None = None) -> list[int]:
    """:func:`extract_findings` as a 0/1 list in FINDINGS order."""
    return [int(v) for v in extract_findings(text, language).values()]
