"""Where things live inside a site directory (see docs/contracts.md section 1)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SiteLayout:
    """Paths of one hospital's site directory."""

    root: Path

    @property
    def cache_dir(self) -> Path:
        """Ingestion output (no PHI)."""
        return self.root / "cache"

    @property
    def ingest_report_path(self) -> Path:
        """Per-file ingestion report for hospital IT: names input files by path, so it stays outside the cache."""
        return self.root / "ingest" / "ingest_report.json"

    @property
    def ledger_path(self) -> Path:
        """Append-only privacy ledger."""
        return self.root / "privacy" / "ledger.jsonl"

    @property
    def rounds_seen_path(self) -> Path:
        """Rounds this site took part in, per run (replay and rollback refusal)."""
        return self.root / "federation" / "rounds_seen.json"

    @property
    def interactions_path(self) -> Path:
        """The consortium's drug-interaction table (public reference data)."""
        return self.root / "reference" / "drug_interactions.csv"

    @property
    def labels_path(self) -> Path:
        """Ground truth of the synthetic consortium, read by evaluation only."""
        return self.root / "truth" / "labels.csv"

    @property
    def pacs_dir(self) -> Path:
        """Where ``fedmpt site pull`` writes retrieved studies: ``dicom/pacs/<salted study key>/``."""
        return self.root / "dicom" / "pacs"

    @property
    def pacs_state_path(self) -> Path:
        """What earlier PACS pulls retrieved and which studies failed (salted keys only)."""
        return self.root / "pacs" / "pull_state.sqlite"
