"""Shared pieces of the English and Chinese report templates: context and grading rules."""

from __future__ import annotations

from dataclasses import dataclass

from .measure import Finding

ORDER: tuple[str, ...] = (
    "consolidation", "ground_glass_opacity", "nodule", "emphysema", "pleural_effusion",
)
"""Order in which findings are described (airspace disease first, pleura last)."""


@dataclass(frozen=True)
class ReportContext:
    """What the radiologist knows besides the findings.

    Parameters
    ----------
    language : {"en", "zh"}
        Report language.
    style : int
        English template (0 structured, 1 narrative, 2 telegraphic).
    thickness_mm : float
        Slice thickness, quoted in the technique line.
    has_prior : bool
        Whether a prior chest CT of the patient exists (follow-up study).
    cardiomegaly : bool
        Whether the heart is enlarged.
    referring_display : str
        Referring physician as written in running text ("John Smith"); style 0 and 2
        name them when an urgent finding was phoned through.
    """

    language: str
    style: int
    thickness_mm: float
    has_prior: bool
    cardiomegaly: bool
    referring_display: str


def effusion_grade(f: Finding) -> int:
    """0 small (< 150 mL), 1 moderate (< 500 mL), 2 large, by the volume of the mask."""
    return 0 if f.volume_ml < 150 else (1 if f.volume_ml < 500 else 2)


def emphysema_grade(f: Finding) -> int:
    """0 mild (< 5 % of lung), 1 moderate (< 12 %), 2 severe."""
    return 0 if f.lung_fraction < 0.05 else (1 if f.lung_fraction < 0.12 else 2)


def ggo_pattern(findings: list[Finding]) -> str:
    """How a radiologist reads ground glass: around pneumonia, as oedema, or as infection."""
    kinds = {f.kind for f in findings}
    if "consolidation" in kinds:
        return "perilesional"
    return "edema" if "pleural_effusion" in kinds else "infective"


def is_urgent(findings: list[Finding]) -> bool:
    """Significant findings a radiologist phones through to the referrer.

    A moderate or large effusion, a growing nodule, or a nodule of 20 mm or more seen for the
    first time (suspicious for malignancy).
    """
    return any(
        (f.kind == "pleural_effusion" and effusion_grade(f) >= 1)
        or (f.kind == "nodule" and f.change == "increased")
        or (f.kind == "nodule" and f.change in (None, "new") and f.size_mm >= 20)
        for f in findings
    )
