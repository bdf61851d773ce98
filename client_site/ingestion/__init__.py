"""Site ingestion: raw DICOM, report and clinical exports -> the PHI-free cache (docs/contracts.md section 4)."""

from client_site.ingestion.errors import (
    FileRejected,
    IngestionError,
    RejectCode,
    SeriesRejected,
    SiteLayoutError,
)
from client_site.ingestion.pipeline import IngestResult, ingest_site
from client_site.ingestion.preprocess import WINDOWS, PreprocessConfig
from client_site.ingestion.qa import load_qa_metrics, qa_metrics

__all__ = [
    "WINDOWS",
    "FileRejected",
    "IngestResult",
    "IngestionError",
    "PreprocessConfig",
    "RejectCode",
    "SeriesRejected",
    "SiteLayoutError",
    "ingest_site",
    "load_qa_metrics",
    "qa_metrics",
]
