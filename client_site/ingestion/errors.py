"""Rejection codes and the exceptions ingestion raises for unusable files and series."""

from __future__ import annotations

from enum import StrEnum


class RejectCode(StrEnum):
    """Coarse category of a rejection; ``summary`` counts rejections per code."""

    NOT_DICOM = "not_dicom"
    EMPTY_FILE = "empty_file"
    UNREADABLE_FILE = "unreadable_file"
    CORRUPT_HEADER = "corrupt_header"
    DUPLICATE_FILE = "duplicate_file"
    DUPLICATE_INSTANCE = "duplicate_instance"
    NOT_CT = "not_ct"
    UNSUPPORTED_SOP_CLASS = "unsupported_sop_class"
    LOCALIZER = "localizer"
    MULTI_FRAME = "multi_frame"
    MISSING_TAG = "missing_tag"
    MALFORMED_TAG = "malformed_tag"
    TOO_LARGE = "too_large"
    MISSING_PIXEL_DATA = "missing_pixel_data"
    TRUNCATED = "truncated"
    PIXELS_UNREADABLE = "pixels_unreadable"
    SERIES_REJECTED = "series_rejected"
    SERIES_NOT_SELECTED = "series_not_selected"
    REPORT_MALFORMED = "report_malformed"
    REPORT_UNLINKED = "report_unlinked"
    REPORT_DUPLICATE = "report_duplicate"
    CLINICAL_MALFORMED = "clinical_malformed"
    CLINICAL_UNLINKED = "clinical_unlinked"
    NOT_A_REPORT = "not_a_report"


class IngestionError(Exception):
    """Base class of every error raised by :mod:`client_site.ingestion`."""


class SiteLayoutError(IngestionError, ValueError):
    """The site directory does not have the layout of docs/contracts.md section 1."""


class FileRejected(IngestionError):
    """A single input file cannot be used; ``reason`` is written to ingest_report.json.

    Parameters
    ----------
    code : RejectCode
        Category counted in the summary.
    reason : str
        Specific, human-readable reason. It must hold no PHI (no names, IDs, UIDs or dates),
        because it is written to the cache.
    """

    def __init__(self, code: RejectCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason

    def __reduce__(self) -> tuple[type[FileRejected], tuple[RejectCode, str]]:
        return (type(self), (self.code, self.reason))  # pickles across worker processes


class SeriesRejected(IngestionError):
    """A whole series cannot be used (too few slices, a gap, inconsistent geometry, ...).

    Parameters
    ----------
    reason : str
        Specific, human-readable reason without PHI.
    failed_files : dict[str, FileRejected] | None
        Files (relative path -> rejection) whose own failure caused the series to fail
        (default: None, no file-level failure).
    """

    def __init__(self, reason: str, failed_files: dict[str, FileRejected] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.failed_files = dict(failed_files or {})

    def __reduce__(self) -> tuple[type[SeriesRejected], tuple[str, dict[str, FileRejected]]]:
        return (type(self), (self.reason, self.failed_files))  # pickles across worker processes
