"""Incremental-ingestion state in ``cache/state.sqlite``: what earlier runs already read and built.

Tables (no PHI: files are keyed by a salted key of their path, identifiers are salted keys):

- ``files``: per input file, its size and mtime (the change signature), salted content hash, and
  either its rejection or its PHI-free :class:`~slices.SliceHeader` records.
- ``volumes``: per cached study, the key of the volume in ``volumes/<study_key>.npy`` (a hash of
  the selected series' file contents and the preprocessing config) and its statistics.
- ``failures``: series whose pixels could not be read, by the same content key (not retried
  until their files change).
- ``reports``: the scrubbed body of each linked report, by a key of the report's bytes and of
  the DICOM contents of its study (the names used to scrub it come from those headers).

A file whose size and mtime_ns are unchanged is taken as unchanged (as ``make`` and ``git`` do);
``ingest_site(rehash=True)`` re-reads everything. Rows are committed every few seconds and after
each volume, so a killed run loses little and the next run resumes. A volume's row is deleted
before its ``.npy`` is rewritten and inserted after, so a row never vouches for another volume.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

STATE_VERSION = "fedmpt-ingest-4"  # bump when reading or volume building changes: everything is rebuilt
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (file_key TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                                  content_key TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS volumes (study_key TEXT PRIMARY KEY, volume_key TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS failures (content_key TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reports (file_key TEXT PRIMARY KEY, scrub_key TEXT NOT NULL, record TEXT NOT NULL);
"""
_TABLES = ("files", "volumes", "failures", "reports")


@dataclass(frozen=True)
class FileState:
    """What an earlier run found in one file (``record`` is decoded JSON)."""

    size: int
    mtime_ns: int
    content_key: str
    record: dict[str, Any]


class StateStore:
    """Read and update ``state.sqlite`` (open with :meth:`open`, finish with :meth:`close`)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db, self.path = connection, path
        self._last_commit = time.monotonic()
        self._files: dict[str, tuple[int, int, str, str]] = {
            key: (size, mtime, content, record)
            for key, size, mtime, content, record in self._db.execute("SELECT * FROM files")
        }

    @classmethod
    def open(cls, cache_dir: Path) -> StateStore:
        """Open (or create) the store; a store of another version or an unreadable one starts empty."""
        cache_dir.mkdir(parents=True, exist_ok=True)
        path = cache_dir / "state.sqlite"
        try:
            return cls(_connect(path), path)
        except sqlite3.DatabaseError as error:
            logger.warning("%s is unreadable (%s); starting an empty ingestion state, everything is re-read",
                           path, error)
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            return cls(_connect(path), path)

    def file(self, file_key: str) -> FileState | None:
        """The state of a file from an earlier run, if any."""
        row = self._files.get(file_key)
        if row is None:
            return None
        return FileState(size=row[0], mtime_ns=row[1], content_key=row[2], record=json.loads(row[3]))

    def put_file(self, file_key: str, state: FileState) -> None:
        """Record what this run found in a file (committed by :meth:`commit_if_due`)."""
        self.put_encoded_file(file_key, state.size, state.mtime_ns, state.content_key, encode_record(state.record))

    def put_encoded_file(self, file_key: str, size: int, mtime_ns: int, content_key: str, record: str) -> None:
        """:meth:`put_file` with the record already encoded by :func:`encode_record` (in a worker process)."""
        self._files[file_key] = (size, mtime_ns, content_key, record)
        self._db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
                         (file_key, size, mtime_ns, content_key, record))

    def volume(self, study_key: str) -> tuple[str, dict[str, Any]] | None:
        """(volume key, record) of the volume cached for a study, if any."""
        row = self._db.execute("SELECT volume_key, record FROM volumes WHERE study_key = ?", (study_key,)).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def drop_volume(self, study_key: str) -> None:
        """Forget a study's volume before its file is rewritten (committed at once)."""
        self._db.execute("DELETE FROM volumes WHERE study_key = ?", (study_key,))
        self.commit()

    def put_volume(self, study_key: str, volume_key: str, record: dict[str, Any]) -> None:
        """Vouch for the volume just written for a study (committed at once)."""
        self._db.execute("INSERT OR REPLACE INTO volumes VALUES (?, ?, ?)",
                         (study_key, volume_key, json.dumps(record, separators=(",", ":"))))
        self.commit()

    def failure(self, content_key: str) -> dict[str, Any] | None:
        """Why a series with these contents could not be loaded before, if it could not."""
        row = self._db.execute("SELECT record FROM failures WHERE content_key = ?", (content_key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_failure(self, content_key: str, record: dict[str, Any]) -> None:
        """Remember a series that could not be loaded."""
        self._db.execute("INSERT OR REPLACE INTO failures VALUES (?, ?)", (content_key, json.dumps(record)))

    def report(self, file_key: str, scrub_key: str) -> dict[str, Any] | None:
        """The scrubbed report of a file if it was made from the same report and study contents."""
        row = self._db.execute("SELECT scrub_key, record FROM reports WHERE file_key = ?", (file_key,)).fetchone()
        return json.loads(row[1]) if row and row[0] == scrub_key else None

    def put_report(self, file_key: str, scrub_key: str, record: dict[str, Any]) -> None:
        """Remember a scrubbed report body (PHI-free) for reuse."""
        self._db.execute("INSERT OR REPLACE INTO reports VALUES (?, ?, ?)",
                         (file_key, scrub_key, json.dumps(record, ensure_ascii=False)))

    def prune(self, *, files: set[str], volumes: set[str], failures: set[str], reports: set[str]) -> None:
        """Delete the rows of everything not seen in this run."""
        for table, column, keep in (("files", "file_key", files), ("volumes", "study_key", volumes),
                                    ("failures", "content_key", failures), ("reports", "file_key", reports)):
            stale = [k for (k,) in self._db.execute(f"SELECT {column} FROM {table}") if k not in keep]
            self._db.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(k,) for k in stale])
        self._files = {k: v for k, v in self._files.items() if k in files}

    def commit_if_due(self, interval_s: float) -> None:
        """Commit if the last commit is more than ``interval_s`` seconds ago."""
        if time.monotonic() - self._last_commit >= interval_s:
            self.commit()

    def commit(self) -> None:
        """Make everything recorded so far durable."""
        self._db.commit()
        self._last_commit = time.monotonic()

    def close(self) -> None:
        """Commit and close."""
        self.commit()
        self._db.close()


def encode_record(record: dict[str, Any]) -> str:
    """A file's record as the ``files`` table stores it (compact JSON)."""
    return json.dumps(record, separators=(",", ":"))


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA synchronous = NORMAL")
        db.executescript(_SCHEMA)
        row = db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        if row is None or row[0] != STATE_VERSION:
            if row is not None:
                logger.info("ingestion state is from another version (%s); everything is rebuilt", row[0])
            for table in _TABLES:
                db.execute(f"DELETE FROM {table}")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (STATE_VERSION,))
            db.commit()
    except sqlite3.DatabaseError:
        db.close()
        raise
    return db
