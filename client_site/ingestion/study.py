"""A study as ingestion sees it: its files, series candidates, the one selected, and its report entry."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client_site.ingestion.outcomes import ACCEPTED, REJECTED
from client_site.ingestion.series import OrderedSeries
from client_site.ingestion.slices import Identity


@dataclass
class StudyInfo:
    """One study: all series sharing an AccessionNumber (or StudyInstanceUID when it is empty).

    Attributes
    ----------
    key, patient_key : str
        Salted study and patient keys.
    has_accession : bool
        Whether the study key comes from a non-empty AccessionNumber.
    files : dict[str, Path]
        Relative path -> path of every DICOM file of the study (all its series).
    content_keys : dict[str, str]
        Relative path -> salted content hash of those files.
    identities : dict[str, Identity]
        Relative path -> identifying values, for files whose header was read this run (PHI,
        memory only; files reused from the cache are re-read only if a report needs scrubbing).
    candidates : list[OrderedSeries]
        Series that passed the geometry checks.
    selected : OrderedSeries | None
        The series whose volume was cached, if any.
    volume_record : dict[str, Any] | None
        Statistics of the cached volume (state.py ``volumes`` record).
    patient_content_key : str
        Hash of the DICOM contents of every study of the same patient; the identifying values used to
        scrub a report come from all of them (a report may cite a prior exam), so a scrubbed body is
        reused only while it is unchanged.
    """

    key: str
    patient_key: str
    has_accession: bool
    files: dict[str, Path] = field(default_factory=dict)
    content_keys: dict[str, str] = field(default_factory=dict)
    identities: dict[str, Identity] = field(default_factory=dict)
    candidates: list[OrderedSeries] = field(default_factory=list)
    selected: OrderedSeries | None = None
    volume_record: dict[str, Any] | None = None
    patient_content_key: str = ""

    @property
    def content_key(self) -> str:
        """Hash of the contents of every DICOM file of the study (changes when any file changes)."""
        digest = hashlib.sha256()
        for rel in sorted(self.content_keys):
            digest.update(self.content_keys[rel].encode())
        return digest.hexdigest()


def study_entry(study: StudyInfo, has_report: bool, clinical: bool) -> dict[str, Any]:
    """One element of the ``studies`` list of ``cache/ingest_summary.json`` (pseudonymous keys only).

    The site's own ``ingest/ingest_report.json`` adds ``report``, the report file's path.
    """
    selected = study.selected
    return {
        "study_key": study.key,
        "patient_key": study.patient_key,
        "status": ACCEPTED if selected is not None else REJECTED,
        "series_key": selected.series_key if selected is not None else None,
        "has_report": has_report,
        "clinical": clinical,
        "header_summary": f"headers/{study.key}.json" if selected is not None else None,
    }
