"""English report bodies in three house styles (0 structured, 1 narrative, 2 telegraphic)."""

from __future__ import annotations

from .anatomy import LOBES
from .measure import Finding
from .report_common import ReportContext, effusion_grade, emphysema_grade, ggo_pattern, is_urgent

_GRADE = ("mild", "moderate", "severe")
_SIZE = ("small", "moderate", "large")
_RESOLVED = {
    "consolidation": "consolidation", "ground_glass_opacity": "ground-glass opacities",
    "pleural_effusion": "pleural effusion", "nodule": "nodule", "emphysema": "emphysema",
}


def _lobes(f: Finding) -> str:
    names = [LOBES[c] for c in f.lobes] or [LOBES[0]]
    if len(names) == 1:
        return names[0]
    return ", ".join(n.replace(" lobe", "") for n in names[:-1]) + " and " + names[-1] + "s"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _effusion_words(f: Finding) -> tuple[str, str]:
    plural = "s" if f.sides == "bilateral" else ""
    return _SIZE[effusion_grade(f)], f"{f.sides} pleural effusion{plural}"


def _change(f: Finding, ctx: ReportContext) -> str:
    if not ctx.has_prior or f.change is None:
        return ""
    if f.change == "new":
        return " New since the prior examination."
    if f.kind == "nodule" and f.change == "increased":
        return (" Increased in size since the prior examination "
                f"(previously {f.prior_size_mm:.0f} mm).")
    return {
        "stable": " Unchanged compared with the prior examination.",
        "increased": " Increased compared with the prior examination.",
        "decreased": " Decreased compared with the prior examination.",
    }[f.change]


def _nodule(f: Finding, lobe: str, style: int) -> tuple[str, str]:
    d = f"{f.size_mm:.0f} mm"
    text = (f"A {d} solid nodule in the {lobe}.",
            f"There is a solid pulmonary nodule measuring {d} in the {lobe}.",
            f"{d} solid nodule, {lobe}.")[style]
    if f.change == "increased":
        rec = "Interval growth is concerning for malignancy; PET/CT or tissue sampling is recommended."
    elif f.change == "stable":
        rec = "Continue surveillance per Fleischner Society guidelines."
    else:
        rec = "Per Fleischner Society guidelines, consider CT at 3 months, PET/CT or tissue sampling."
    imp = (f"{d} solid nodule in the {lobe}.", f"{_cap(lobe)} pulmonary nodule, {d}.",
           f"{_cap(lobe)} nodule ({d}).")[style]
    return text, f"{imp} {rec}"


def _consolidation(f: Finding, lobe: str, style: int) -> tuple[str, str]:
    cm = f"{f.size_mm / 10.0:.1f} cm"
    text = (f"Consolidation in the {lobe} with air bronchograms, measuring approximately {cm}.",
            f"There is airspace consolidation in the {lobe} with air bronchograms, extending over {cm}.",
            f"{_cap(lobe)} consolidation with air bronchograms ({cm}).")[style]
    imp = (f"{_cap(lobe)} consolidation, consistent with pneumonia in the appropriate clinical setting.",
           f"{_cap(lobe)} consolidation, likely pneumonia.", f"{_cap(lobe)} pneumonia.")[style]
    return text, imp


def _ground_glass(lobe: str, style: int, pattern: str) -> tuple[str, str]:
    if pattern == "perilesional":
        return "Surrounding ground-glass opacity.", ""
    if pattern == "edema":
        return (f"Ground-glass opacities in the {lobe} with interlobular septal thickening.",
                "Ground-glass opacities and pleural effusion, compatible with interstitial pulmonary edema.")
    text = (f"Patchy ground-glass opacities in the {lobe}, predominantly peripheral.",
            f"There are multifocal patchy ground-glass opacities involving the {lobe}.",
            f"Ground-glass opacities, {lobe}.")[style]
    return text, "Multifocal ground-glass opacities; viral or atypical infection should be considered."


def _emphysema(f: Finding, style: int) -> tuple[str, str]:
    grade = _GRADE[emphysema_grade(f)]
    text = (f"{_cap(grade)} centrilobular emphysema, upper-lobe predominant.",
            f"There is {grade} centrilobular emphysema, most pronounced in the upper lobes.",
            f"{_cap(grade)} upper-lobe predominant centrilobular emphysema.")[style]
    return text, f"{_cap(grade)} centrilobular emphysema."


def _effusion(f: Finding, style: int) -> tuple[str, str]:
    size, what = _effusion_words(f)
    atelectasis = " with adjacent compressive atelectasis" if effusion_grade(f) else ""
    narrative = (f"{_cap(size)} {what} are present." if f.sides == "bilateral"
                 else f"A {size} {what} is present.")
    text = (f"{_cap(size)} {what}{atelectasis}.", narrative, f"{_cap(size)} {what}.")[style]
    return text, f"{_cap(size)} {what}."


def _finding(f: Finding, pattern: str, style: int, ctx: ReportContext) -> tuple[str, str]:
    """(findings sentence, impression sentence) for one finding; the impression may be ""."""
    lobe = _lobes(f)
    if f.kind == "nodule":
        text, imp = _nodule(f, lobe, style)
    elif f.kind == "consolidation":
        text, imp = _consolidation(f, lobe, style)
    elif f.kind == "ground_glass_opacity":
        text, imp = _ground_glass(lobe, style, pattern)
    elif f.kind == "emphysema":
        text, imp = _emphysema(f, style)
    else:
        text, imp = _effusion(f, style)
    return text + _change(f, ctx), imp


def body_en(findings: list[Finding], resolved: list[str], ctx: ReportContext) -> str:
    """English body; ``findings`` are already in reporting order."""
    style = ctx.style % 3
    pattern = ggo_pattern(findings)
    lungs: list[str] = []
    pleura: list[str] = []
    impression: list[str] = []
    for f in findings:
        text, imp = _finding(f, pattern, style, ctx)
        (pleura if f.kind == "pleural_effusion" else lungs).append(text)
        if imp:
            impression.append(imp)
    gone = [f"Interval resolution of the previously seen {_RESOLVED[k]}." for k in resolved]
    lungs += [g for g in gone if "effusion" not in g]
    pleura += [g for g in gone if "effusion" in g]
    impression += gone
    if not lungs:
        lungs = [("The lungs are clear. No pulmonary nodule or consolidation.", "The lungs are clear.",
                  "Clear.")[style]]
    if not pleura:
        pleura = [("No pleural effusion or pneumothorax.", "No pleural effusion.", "No effusion.")[style]]
    heart = "The heart is enlarged." if ctx.cardiomegaly else "Heart size is normal."
    if ctx.cardiomegaly:
        impression.append("Cardiomegaly.")
    if not impression:
        impression = [("No acute cardiopulmonary abnormality.", "Normal CT of the chest.",
                       "No acute findings.")[style]]
    if is_urgent(findings) and style != 1:
        impression.append(f"These findings were discussed with Dr. {ctx.referring_display} "
                          "on the day of the examination.")
    prior = ctx.has_prior
    if style == 0:
        head = (f"TECHNIQUE: Non-contrast CT of the chest, {ctx.thickness_mm:g} mm axial images.\n"
                f"COMPARISON: {'Prior chest CT.' if prior else 'None.'}\n\n")
        body = (f"FINDINGS:\nLungs and airways: {' '.join(lungs)} The central airways are patent.\n"
                f"Pleura: {' '.join(pleura)}\n"
                f"Heart and mediastinum: {heart} No mediastinal or hilar lymphadenopathy.\n"
                "Bones: No aggressive osseous lesion.\n\n")
        imp = "\n".join(f"{i}. {s}" for i, s in enumerate(impression, 1))
    elif style == 1:
        head = "Comparison is made with the prior chest CT.\n\n" if prior else ""
        body = "FINDINGS:\n" + " ".join(lungs + pleura)
        body += f" {heart} The mediastinum is unremarkable.\n\n"
        imp = "\n".join(impression)
    else:
        head = f"COMPARISON: {'Prior CT chest.' if prior else 'None available.'}\n\n"
        body = (f"FINDINGS:\n- Lungs: {' '.join(lungs)}\n- Pleura: {' '.join(pleura)}\n"
                f"- Heart/mediastinum: {heart.rstrip('.')}; no lymphadenopathy.\n\n")
        imp = "\n".join(f"- {s}" for s in impression)
    return f"{head}{body}IMPRESSION:\n{imp}\n"
