"""The aggregator's results store: one SQLite file with runs, per-site metrics and participation.

Every write is one transaction, so a crash never leaves a half-recorded round. The dashboard
opens the file read-only.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    finished_at REAL,
    status TEXT NOT NULL,             -- running | completed | failed
    status_detail TEXT,
    strategy TEXT NOT NULL,
    num_rounds INTEGER NOT NULL,
    config_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS participation (
    run_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    phase TEXT NOT NULL,              -- train | evaluate
    node_id TEXT NOT NULL,
    site TEXT,
    status TEXT NOT NULL,             -- ok | failed
    reason TEXT,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (run_id, round, phase, node_id)
);
CREATE TABLE IF NOT EXISTS site_metrics (
    run_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    phase TEXT NOT NULL,
    site TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL,                       -- NULL when the site reported NaN (undefined)
    PRIMARY KEY (run_id, round, phase, site, metric)
);
CREATE TABLE IF NOT EXISTS global_metrics (
    run_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    phase TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, round, phase, metric)
);
"""


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


class ResultsStore:
    """Read and write the consortium's results.

    Parameters
    ----------
    path : Path
        SQLite file; created with its schema when missing (unless ``read_only``).
    read_only : bool
        Open without write access, for the dashboard. (default: False)
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        if read_only:
            if not self.path.exists():
                raise FileNotFoundError(
                    f"no results store at {self.path}; run `fedmpt demo` or start a federated run first"
                )
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
        self._db.row_factory = sqlite3.Row

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._db:
            yield self._db

    # -- writes ---------------------------------------------------------------------------
    def start_run(
        self, run_id: str, *, strategy: str, num_rounds: int, config: Mapping[str, Any]
    ) -> None:
        """Record a run as running (a resumed run keeps its start time, takes the new length)."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO runs (run_id, started_at, status, strategy, num_rounds, config_json) "
                "VALUES (?, ?, 'running', ?, ?, ?) ON CONFLICT(run_id) DO UPDATE SET "
                "status='running', finished_at=NULL, status_detail=NULL, num_rounds=excluded.num_rounds",
                (run_id, time.time(), strategy, num_rounds, json.dumps(dict(config), sort_keys=True)),
            )

    def finish_run(self, run_id: str, *, status: str, detail: str | None = None) -> None:
        """Mark a run completed or failed."""
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status=?, status_detail=?, finished_at=? WHERE run_id=?",
                (status, detail, time.time(), run_id),
            )

    def record_participation(
        self,
        run_id: str,
        round: int,
        phase: str,
        *,
        node_id: str,
        site: str | None,
        status: str,
        reason: str | None = None,
    ) -> None:
        """Record whether a sampled node replied in a round's phase."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO participation VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, round, phase, node_id, site, status, reason, time.time()),
            )

    def name_node(self, run_id: str, node_id: str, site: str) -> None:
        """Give ``site`` to the run's earlier rows of ``node_id`` that were recorded before its
        name was known (e.g. the node refused its first train request, then evaluated)."""
        with self._transaction() as db:
            db.execute("UPDATE participation SET site = ? WHERE run_id = ? AND node_id = ? AND site IS NULL",
                       (site, run_id, node_id))

    def record_site_metrics(
        self, run_id: str, round: int, phase: str, site: str, metrics: Mapping[str, float]
    ) -> None:
        """Record one site's metrics for a round's phase (NaN is stored as NULL)."""
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO site_metrics VALUES (?, ?, ?, ?, ?, ?)",
                [(run_id, round, phase, site, k, _finite_or_none(v)) for k, v in metrics.items()],
            )

    def record_global_metrics(
        self, run_id: str, round: int, phase: str, metrics: Mapping[str, float]
    ) -> None:
        """Record the aggregated metrics of a round's phase."""
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO global_metrics VALUES (?, ?, ?, ?, ?)",
                [(run_id, round, phase, k, _finite_or_none(v)) for k, v in metrics.items()],
            )

    # -- reads ----------------------------------------------------------------------------
    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self._db.execute(sql, params)]

    def runs(self) -> list[dict[str, Any]]:
        """All runs, newest first."""
        return self._rows("SELECT * FROM runs ORDER BY started_at DESC")

    def site_metrics(self, run_id: str) -> list[dict[str, Any]]:
        """Long-format rows (round, phase, site, metric, value) of a run."""
        return self._rows(
            "SELECT round, phase, site, metric, value FROM site_metrics WHERE run_id=? "
            "ORDER BY round, phase, site, metric",
            (run_id,),
        )

    def global_metrics(self, run_id: str) -> list[dict[str, Any]]:
        """Long-format aggregated rows (round, phase, metric, value) of a run."""
        return self._rows(
            "SELECT round, phase, metric, value FROM global_metrics WHERE run_id=? "
            "ORDER BY round, phase, metric",
            (run_id,),
        )

    def participation(self, run_id: str) -> list[dict[str, Any]]:
        """Who took part in each round's phase, and why a node did not."""
        return self._rows(
            "SELECT round, phase, node_id, site, status, reason FROM participation "
            "WHERE run_id=? ORDER BY round, phase, site",
            (run_id,),
        )
