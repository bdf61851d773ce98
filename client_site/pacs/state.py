"""What earlier pulls retrieved and which studies failed, in ``SITE_DIR/pacs/pull_state.sqlite``.

Instances are tracked by a salted key of their SOPInstanceUID, studies by the site's salted study
key (the same key ingestion gives the study): the file holds no identifier of a patient.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (sop_key TEXT PRIMARY KEY, study_key TEXT NOT NULL, rel_path TEXT NOT NULL,
                                      bytes INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS failures (study_key TEXT PRIMARY KEY, error TEXT NOT NULL, attempts INTEGER NOT NULL,
                                     last_attempt TEXT NOT NULL);
"""


@dataclass(frozen=True)
class StudyFailure:
    """A study whose retrieval failed: its salted key, the PACS's error and how often it was tried."""

    study_key: str
    error: str
    attempts: int = 1


class PullState:
    """Read and update the pull state (open with :meth:`open`, finish with :meth:`close`).

    Safe to use from the thread of a C-STORE SCP (C-MOVE delivers instances there).
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db, self._lock = connection, threading.Lock()
        self._known = {key: rel for key, rel in self._db.execute("SELECT sop_key, rel_path FROM instances")}
        self._last_commit = time.monotonic()

    @classmethod
    def open(cls, path: Path) -> PullState:
        """Open (or create) the state file, in a folder only its owner may enter."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        db = sqlite3.connect(path, check_same_thread=False)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.executescript(_SCHEMA)
        return cls(db)

    def known_path(self, sop_key: str) -> str | None:
        """Where an earlier pull wrote this instance (relative to the site), if it did."""
        return self._known.get(sop_key)

    def add_instance(self, sop_key: str, study_key: str, rel_path: str, size: int) -> None:
        """Record a retrieved (or found already written) instance; committed every second or so."""
        with self._lock:
            self._known[sop_key] = rel_path
            self._db.execute("INSERT OR REPLACE INTO instances VALUES (?, ?, ?, ?)",
                             (sop_key, study_key, rel_path, size))
        if time.monotonic() - self._last_commit > 1.0:
            self.commit()

    def record_failure(self, study_key: str, error: str) -> StudyFailure:
        """Remember that a study failed (retried by the next pull)."""
        with self._lock:
            row = self._db.execute("SELECT attempts FROM failures WHERE study_key = ?", (study_key,)).fetchone()
            attempts = (row[0] if row else 0) + 1
            self._db.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?)",
                             (study_key, error, attempts, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
        self.commit()
        return StudyFailure(study_key=study_key, error=error, attempts=attempts)

    def clear_failure(self, study_key: str) -> None:
        """Forget an earlier failure of a study that has now been retrieved completely."""
        with self._lock:
            self._db.execute("DELETE FROM failures WHERE study_key = ?", (study_key,))

    def failures(self) -> list[StudyFailure]:
        """Studies whose last retrieval failed."""
        with self._lock:
            rows = self._db.execute("SELECT study_key, error, attempts FROM failures ORDER BY study_key").fetchall()
        return [StudyFailure(study_key=k, error=e, attempts=a) for k, e, a in rows]

    def commit(self) -> None:
        """Make everything recorded durable."""
        with self._lock:
            self._db.commit()
            self._last_commit = time.monotonic()

    def close(self) -> None:
        """Commit and close."""
        self.commit()
        self._db.close()
