"""A study as ingestion sees it: its series candidates, the one selected, and its report entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from client_site.ingestion.outcomes import ACCEPTED, REJECTED
from client_site.ingestion.series import OrderedSeries


@dataclass
class StudyInfo:
    """One study: all series sharing an AccessionNumber (or StudyInstanceUID when it is empty).

    Attributes
    ----------
    key, patient_key : str
        Salted study and patient keys.
    accession : str
        AccessionNumber ("" when empty); PHI, memory only.
    names, ids : set[str]
        Person names and patient IDs from the DICOM headers, used to scrub the report; PHI.
    candidates : list[OrderedSeries]
        Series that passed the geometry checks.
    selected : OrderedSeries | None
        The series whose volume was cached, if any.
    """

    key: str
    patient_key: str
    accession: str
    names: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)
    candidates: list[OrderedSeries] = field(default_factory=list)
    selected: OrderedSeries | None = None


def study_entry(study: StudyInfo, series_keys: dict[str, str], report_path: str | None, clinical: bool) -> dict[str, Any]:
    """One element of the ``studies`` list of ingest_report.json (no PHI besides the report's path)."""
    selected = study.selected
    return {
        "study_key": study.key,
        "patient_key": study.patient_key,
        "status": ACCEPTED if selected is not None else REJECTED,
        "series_key": series_keys[selected.slices[0].series_uid] if selected is not None else None,
        "report": report_path,
        "clinical": clinical,
    }
