"""Bookkeeping for ingest_report.json: one outcome per file seen, one entry per series."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from client_site.ingestion.errors import FileRejected, RejectCode

ACCEPTED, REJECTED, NOT_SELECTED = "accepted", "rejected", "not_selected"


@dataclass
class FileOutcomes:
    """Status of every file seen, keyed by path relative to the site directory.

    A file's outcome can be overwritten while the run goes on (e.g. a slice provisionally
    waiting in a series becomes "accepted" or "rejected: series ..."), but it is listed once.
    """

    _entries: dict[str, tuple[str, str | None, RejectCode | None]] = field(default_factory=dict)
    _kinds: dict[str, str] = field(default_factory=dict)

    def accept(self, rel_path: str, kind: str) -> None:
        """Mark a file as used (its content is in the cache)."""
        self._entries[rel_path] = (ACCEPTED, None, None)
        self._kinds[rel_path] = kind

    def reject(self, rel_path: str, kind: str, rejection: FileRejected) -> None:
        """Mark a file as not used, with the specific reason of ``rejection``."""
        self._entries[rel_path] = (REJECTED, rejection.reason, rejection.code)
        self._kinds[rel_path] = kind

    def to_json(self) -> list[dict[str, Any]]:
        """``files`` list of ingest_report.json, sorted by path."""
        return [
            {"path": path, "status": status, "reason": reason}
            for path, (status, reason, _) in sorted(self._entries.items())
        ]

    def summary(self) -> dict[str, Any]:
        """Aggregate counts: per status, per rejection code, per kind of file."""
        statuses = Counter(status for status, _, _ in self._entries.values())
        codes = Counter(str(code) for _, _, code in self._entries.values() if code is not None)
        by_kind: dict[str, Counter[str]] = {}
        for path, (status, _, _) in self._entries.items():
            by_kind.setdefault(self._kinds[path], Counter())[status] += 1
        return {
            "files_seen": len(self._entries),
            "files_accepted": statuses[ACCEPTED],
            "files_rejected": statuses[REJECTED],
            "rejected_by_reason": dict(sorted(codes.items())),
            "files_by_kind": {
                kind: {"seen": sum(c.values()), "accepted": c[ACCEPTED], "rejected": c[REJECTED]}
                for kind, c in sorted(by_kind.items())
            },
        }


def series_entry(
    *,
    series_key: str,
    study_key: str,
    patient_key: str,
    status: str,
    reason: str | None,
    n_slices: int,
    spacing_mm: tuple[float, float, float] | None,
    shape: tuple[int, int, int] | None,
) -> dict[str, Any]:
    """One element of the ``series`` list of ingest_report.json and ingest_summary.json (docs/contracts.md section 4)."""
    return {
        "series_key": series_key,
        "study_key": study_key,
        "patient_key": patient_key,
        "status": status,
        "reason": reason,
        "n_slices": n_slices,
        "spacing_mm": [round(float(s), 4) for s in spacing_mm] if spacing_mm else None,
        "shape": [int(s) for s in shape] if shape else None,
    }
