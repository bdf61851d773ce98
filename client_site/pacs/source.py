"""What a PACS answers to a query, and the interface both protocols implement.

The UIDs, accession numbers and dates held here identify patients: they stay in memory and are
turned into salted keys (:mod:`client_site.pseudonym`) before anything is written or logged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

# Called with (SOPInstanceUID, the Part-10 file's bytes) for each retrieved instance.
StoreInstance = Callable[[str, bytes], None]
STRUCTURED_REPORT_MODALITY = "SR"


@dataclass(frozen=True)
class StudyRef:
    """One study the query matched (PHI: memory only)."""

    study_uid: str
    accession: str
    study_date: str


@dataclass(frozen=True)
class SeriesRef:
    """One series of a study, with the SOPInstanceUIDs it holds (PHI: memory only)."""

    study_uid: str
    series_uid: str
    modality: str
    description: str
    instance_uids: tuple[str, ...]


def wanted_series(series: list[SeriesRef], *, modality: str, description: str) -> list[SeriesRef]:
    """The series to pull from a study: image series of ``modality`` whose description contains
    ``description`` (case-insensitive; empty: any), and every structured-report series (report text)."""
    needle = description.casefold()
    return [s for s in series
            if s.modality == STRUCTURED_REPORT_MODALITY
            or (s.modality == modality and needle in s.description.casefold())]


class PacsSource(Protocol):
    """A read-only connection to a PACS (DICOMweb or DIMSE)."""

    def verify(self) -> str:
        """Check the connection and credentials without retrieving anything; returns what was checked."""
        ...

    def find_studies(self) -> list[StudyRef]:
        """Studies matching the configured modality and date range, oldest first."""
        ...

    def find_series(self, study: StudyRef) -> list[SeriesRef]:
        """Every series of a study, with its instance UIDs."""
        ...

    def retrieve(self, series: SeriesRef, instance_uids: list[str], store: StoreInstance) -> None:
        """Retrieve these instances of a series, handing each to ``store`` as it arrives.

        Raises
        ------
        PacsError
            With the PACS's own error when the retrieval fails (instances stored before stay stored).
        """
        ...

    def close(self) -> None:
        """Release the connection."""
        ...
