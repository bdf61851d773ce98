"""Parse radiology report files (docs/contracts.md section 2) and scrub identifying text from the body.

The header is dropped entirely; the body keeps its medical text, with every header value that
identifies a person (patient and physician names in caret, "Given Family", "Family Given",
"Family, Given" and unspaced forms and their parts, IDs, the accession, dates) replaced by a
bracketed placeholder, plus any full calendar date written in a common format, plus any token that
looks like an identifier even when its value is unknown (a prior exam's accession, another MRN):
a run of ASCII letters and digits with at least 4 digits and a letter, or at least 6 digits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from client_site.ingestion.errors import FileRejected, RejectCode

LANGUAGES = ("en", "zh")
NAME, ID, DATE = "[NAME]", "[ID]", "[DATE]"
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
# Full dates in common notations: 2024-01-15, 2024/1/15, 20240115, 15.01.2024, 01/15/2024, 2024年1月15日.
_GENERIC_DATES = (
    re.compile(r"(?<!\d)(?:19|20)\d{2}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])(?!\d)"),
    re.compile(r"(?<!\d)(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)"),
    re.compile(r"(?<!\d)(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|[12]\d|3[01])[-/.](?:19|20)\d{2}(?!\d)"),
    re.compile(r"(?:19|20)\d{2}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日"),
)


_TOKEN = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True)
class ParsedReport:
    """One report file: header (PHI, memory only) and raw body.

    Attributes
    ----------
    rel_path : str
        Path relative to the site directory.
    accession : str
        Header ``Accession`` value, used only to link the report to its study.
    header : dict[str, str]
        Every header line, keys lower-cased (holds PHI; never written).
    body : str
        Text after the first blank line, not yet scrubbed.
    """

    rel_path: str
    accession: str
    header: dict[str, str] = field(repr=False)
    body: str = field(repr=False)

    @property
    def language(self) -> str | None:
        """``en`` or ``zh`` from the header, else guessed from the body's script."""
        given = self.header.get("language", "").strip().lower()
        if given:
            return given if given in LANGUAGES else None
        return "zh" if _CJK.search(self.body) else "en"


def parse_report(path: Path, rel_path: str) -> ParsedReport:
    """Read one ``reports/*.txt`` file.

    Raises
    ------
    FileRejected
        If the file is not UTF-8, has no ``Key: value`` header ended by a blank line, no
        ``Accession`` line, or an empty body.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise FileRejected(RejectCode.REPORT_MALFORMED, "report is not UTF-8 text; re-export it as UTF-8") from error
    except OSError as error:
        raise FileRejected(RejectCode.UNREADABLE_FILE, f"cannot read file: {error.strerror}") from error
    lines = text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n")
    header: dict[str, str] = {}
    for number, line in enumerate(lines):
        if not line.strip():
            body = "\n".join(lines[number + 1:]).strip()
            break
        key, sep, value = line.partition(":")
        if not sep:
            raise FileRejected(
                RejectCode.REPORT_MALFORMED,
                f"header line {number + 1} is not 'Key: value' (contracts.md section 2 expects a header, "
                "a blank line, then the body)",
            )
        header[key.strip().lower()] = value.strip()
    else:
        raise FileRejected(RejectCode.REPORT_MALFORMED, "no blank line between header and body")
    accession = header.get("accession", "")
    if not accession:
        raise FileRejected(RejectCode.REPORT_MALFORMED, "header has no 'Accession:' value; cannot link to a study")
    if not body:
        raise FileRejected(RejectCode.REPORT_MALFORMED, "report body is empty")
    return ParsedReport(rel_path=rel_path, accession=accession, header=header, body=body)


def scrub_report(report: ParsedReport, *, names: Iterable[str] = (), identifiers: Iterable[str] = ()) -> str:
    """Return the report body with identifying values replaced by placeholders.

    Parameters
    ----------
    report : ParsedReport
        The parsed report; every header value except ``Language`` is treated as identifying.
    names : Iterable[str]
        Extra person names (e.g. the DICOM PatientName of the linked study), caret or spaced form
        (default: none).
    identifiers : Iterable[str]
        Extra IDs (e.g. the DICOM PatientID) (default: none).
    """
    header_names, header_ids, header_dates = [], [], []
    for key, value in report.header.items():
        if key == "language" or not value:
            continue
        if "date" in key or _parse_date(value) is not None:
            header_dates.append(value)
        elif "id" in key.split() or "accession" in key or any(c.isdigit() for c in value):
            header_ids.append(value)
        else:
            header_names.append(value)
    return scrub_text(report.body, names=[*header_names, *names], identifiers=[*header_ids, *identifiers],
                      dates=header_dates)


def scrub_text(text: str, *, names: Iterable[str], identifiers: Iterable[str], dates: Iterable[str]) -> str:
    """Replace names, identifiers and dates (given values, and any full date) in ``text``."""
    replacements: list[tuple[str, str]] = []
    for name in names:
        replacements += [(form, NAME) for form in _name_forms(name)]
    for ident in identifiers:
        replacements += [(form, ID) for form in _id_forms(ident)]
    for date in dates:
        replacements += [(form, DATE) for form in _date_forms(date)]
    # Longest first, so "DOE^JANE" goes before "DOE" and a full date before its year.
    for form, placeholder in sorted(set(replacements), key=lambda r: -len(r[0])):
        text = _pattern(form).sub(placeholder, text)
    for pattern in _GENERIC_DATES:
        text = pattern.sub(DATE, text)
    return _TOKEN.sub(_generic_id, text)


def _generic_id(match: re.Match[str]) -> str:
    """[ID] for an identifier-like token: 4+ digits with a letter ("ACC9911"), or 6+ digits ("0012345")."""
    token = match.group(0)
    digits = sum(c.isdigit() for c in token)
    return ID if digits >= 6 or (digits >= 4 and any(c.isalpha() for c in token)) else token


def _pattern(form: str) -> re.Pattern[str]:
    """Case-insensitive pattern for one spelling, words separated by any spaces or commas.

    ASCII forms must not touch other letters or digits; CJK text has no word boundaries, so CJK
    forms match anywhere.
    """
    words = [w for w in re.split(r"[\s,]+", form) if w]
    escaped = r"[\s,]+".join(re.escape(w) for w in words)
    if _CJK.search(form):
        return re.compile(escaped, re.IGNORECASE)
    return re.compile(rf"(?<![0-9A-Za-z]){escaped}(?![0-9A-Za-z])", re.IGNORECASE)


def _name_forms(name: str) -> set[str]:
    """Spellings of a person name; a DICOM PN may hold "=" separated alphabetic/ideographic groups."""
    forms: set[str] = set()
    for group in name.split("="):
        forms |= _group_forms(group)
    return forms


def _group_forms(group: str) -> set[str]:
    raw = group.strip().strip("^").strip()
    if not raw:
        return set()
    if "^" in raw:
        parts = [p.strip() for p in raw.split("^")]
        family, given, middle = [*parts, "", "", ""][:3]
    else:
        words = raw.replace(",", " ").split()
        family, given, middle = (words[-1], " ".join(words[:-1]), "") if len(words) > 1 else (raw, "", "")
    forms = {raw, " ".join(raw.replace("^", " ").split())}
    if family and given:
        forms |= {f"{given} {family}", f"{family} {given}", f"{family}, {given}", f"{family}{given}",
                  f"{given}{family}", f"{family}^{given}"}
        if middle:
            forms |= {f"{given} {middle} {family}", f"{family} {given} {middle}", f"{family}, {given} {middle}"}
    for part in (family, given, middle, *family.split(), *given.split()):
        # Single parts too (e.g. "Dr. Smith"); one CJK character or one ASCII letter is too common to scrub.
        if len(part) >= 2:
            forms.add(part)
    return {f for f in forms if f.strip()}


def _id_forms(ident: str) -> set[str]:
    value = ident.strip()
    forms = {value}
    # "MRN0012345" may also be written "MRN 0012345" or as the bare number.
    for digits in re.findall(r"\d{4,}", value):
        forms |= {digits, digits.lstrip("0")} if len(digits.lstrip("0")) >= 4 else {digits}
    return {f for f in forms if f}


def _parse_date(value: str) -> tuple[int, int, int] | None:
    match = re.fullmatch(r"((?:19|20)\d{2})-?(\d{2})-?(\d{2})", value.strip())
    if not match:
        return None
    year, month, day = (int(g) for g in match.groups())
    return (year, month, day) if 1 <= month <= 12 and 1 <= day <= 31 else None


def _date_forms(value: str) -> set[str]:
    parsed = _parse_date(value)
    if parsed is None:
        return {value.strip()} if value.strip() else set()
    y, m, d = parsed
    month = _MONTHS[m - 1]
    forms = {value.strip()}
    for mm, dd in ((f"{m:02d}", f"{d:02d}"), (str(m), str(d))):
        forms |= {f"{y}{mm}{dd}", f"{y}-{mm}-{dd}", f"{y}/{mm}/{dd}", f"{y}.{mm}.{dd}", f"{dd}/{mm}/{y}",
                  f"{mm}/{dd}/{y}", f"{dd}.{mm}.{y}", f"{dd}-{mm}-{y}", f"{y}年{mm}月{dd}日"}
    forms |= {f"{month} {d}, {y}", f"{d} {month} {y}", f"{month[:3]} {d}, {y}", f"{d} {month[:3]} {y}"}
    return forms
