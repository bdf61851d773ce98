"""DICOM Structured Reports (Basic Text, Enhanced, Comprehensive SR) as radiology report text.

A PACS often keeps the report of a CT study as an SR object in the same study. Its text items
become a report body ("FINDINGS: ..." per titled text, code or number); person names (PNAME items,
observers, the patient) and the header's identifiers go into the scrubbing like a report file's
header, never into the body. The SR is linked to its study by AccessionNumber, as report files are
(docs/contracts.md section 2); a report file for the same accession takes precedence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset

from client_site.ingestion import tags
from client_site.ingestion.errors import FileRejected, RejectCode
from client_site.ingestion.reports import ParsedReport

SR_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
}
_HEADER_VALUES = ("AccessionNumber", "PatientName", "PatientID", "PatientBirthDate", "StudyDate", "ContentDate",
                  "ReferringPhysicianName", "InstitutionName", "StudyID")


def is_structured_report(ds: Dataset) -> bool:
    """Whether a header is one of the text-bearing SR storage classes."""
    return tags.text(ds, "SOPClassUID") in SR_SOP_CLASSES


def read_structured_report(path: Path, rel_path: str) -> ParsedReport:
    """The SR in ``path`` as a parsed report: identifying values in ``header``, its text as ``body``.

    Raises
    ------
    FileRejected
        If the file cannot be read again, has no AccessionNumber or holds no text.
    """
    try:
        ds = pydicom.dcmread(path)
    except Exception as error:  # changed or damaged since the header pass
        raise FileRejected(RejectCode.REPORT_MALFORMED, f"structured report unreadable ({type(error).__name__})") \
            from error
    header = {keyword.lower(): str(ds.get(keyword) or "").strip() for keyword in _HEADER_VALUES}
    names: list[str] = []
    lines = _content_lines(ds.get("ContentSequence") or [], names)
    for observer in ds.get("VerifyingObserverSequence") or []:
        names.append(str(observer.get("VerifyingObserverName") or ""))
    for number, name in enumerate(n for n in names if n.strip()):
        header[f"observer name {number}"] = name.strip()
    if not header["accessionnumber"]:
        raise FileRejected(RejectCode.REPORT_UNLINKED, "structured report has no AccessionNumber; cannot link it "
                                                       "to a study")
    body = "\n".join(lines).strip()
    if not body:
        raise FileRejected(RejectCode.REPORT_MALFORMED, "structured report holds no text, code or number item")
    return ParsedReport(rel_path=rel_path, accession=header["accessionnumber"], header=header, body=body)


def _content_lines(items: Any, names: list[str]) -> list[str]:
    """Body lines of a content tree, depth first: TEXT, CODE and NUM items under their concept name.

    PNAME values are collected into ``names`` instead; dates, times, UIDs and references are left out.
    """
    lines: list[str] = []
    for item in items:
        value_type = str(item.get("ValueType", ""))
        concept = _meaning(item.get("ConceptNameCodeSequence"))
        if value_type == "PNAME":
            names.append(str(item.get("PersonName") or ""))
        elif value_type == "TEXT" and str(item.get("TextValue") or "").strip():
            lines.append(f"{concept.upper()}: {str(item.TextValue).strip()}" if concept else str(item.TextValue).strip())
        elif value_type == "CODE" and concept:
            lines.append(f"{concept.upper()}: {_meaning(item.get('ConceptCodeSequence'))}")
        elif value_type == "NUM" and concept:
            lines.append(f"{concept.upper()}: {_measurement(item)}")
        lines += _content_lines(item.get("ContentSequence") or [], names)
    return lines


def _meaning(codes: Any) -> str:
    return str(codes[0].get("CodeMeaning") or "").strip() if codes else ""


def _measurement(item: Dataset) -> str:
    values = item.get("MeasuredValueSequence") or []
    if not values:
        return ""
    unit = _meaning(values[0].get("MeasurementUnitsCodeSequence"))
    return f"{values[0].get('NumericValue', '')} {unit}".strip()
