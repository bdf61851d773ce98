"""Radiology report files (docs/contracts.md section 2): PHI header + body in the site's language.

Bodies are written from the *measured* true findings (location, size, change since the
prior study) with each site's own template and pertinent negatives, as radiologists do, so
a finding's name can appear in a sentence that denies it ("No pleural effusion.").
"""

from __future__ import annotations

from .measure import Finding
from .report_common import ORDER, ReportContext
from .report_en import body_en
from .report_zh import body_zh


def report_body(findings: list[Finding], resolved: list[str], ctx: ReportContext) -> str:
    """Body text (after the header) for the given true findings."""
    ordered = sorted(findings, key=lambda f: ORDER.index(f.kind))
    if ctx.language == "zh":
        return body_zh(ordered, resolved, ctx)
    if ctx.language != "en":
        raise ValueError(f"language must be 'en' or 'zh', got {ctx.language!r}")
    return body_en(ordered, resolved, ctx)


def report_file_text(header: dict[str, str], body: str) -> str:
    """Full report file: ``Key: value`` header lines, a blank line, the body, a final newline."""
    lines = [f"{key}: {value}" for key, value in header.items()]
    return "\n".join(lines) + "\n\n" + body.rstrip("\n") + "\n"


def parse_report_header(text: str) -> dict[str, str]:
    """Header of a report file as a dict (inverse of :func:`report_file_text`)."""
    header: dict[str, str] = {}
    for line in text.split("\n"):
        if not line.strip():
            break
        key, _, value = line.partition(":")
        header[key.strip()] = value.strip()
    return header
