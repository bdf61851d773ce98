"""Read-only snapshots of the results store, with its failures turned into dashboard errors."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aggregator.results_store import ResultsStore
from dashboard.errors import StoreMissingError, StoreReadError

__all__ = ["QA_PREFIX", "RunData", "load_qa_metrics", "load_run", "load_runs", "store_signature"]

#: Site metrics whose name starts with this are shared ingestion statistics (data quality).
QA_PREFIX = "qa_"

logger = logging.getLogger(__name__)

Row = dict[str, Any]


@dataclass(frozen=True)
class RunData:
    """Everything the dashboard shows about one run, read in one go.

    Parameters
    ----------
    run : dict[str, Any]
        The run's row of the ``runs`` table.
    site_metrics : list[dict[str, Any]]
        Long-format rows (round, phase, site, metric, value).
    global_metrics : list[dict[str, Any]]
        Long-format aggregated rows (round, phase, metric, value).
    participation : list[dict[str, Any]]
        Rows (round, phase, node_id, site, status, reason).
    """

    run: Row
    site_metrics: list[Row] = field(default_factory=list)
    global_metrics: list[Row] = field(default_factory=list)
    participation: list[Row] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        """The run's id."""
        return str(self.run["run_id"])


def _unreadable(path: Path, error: sqlite3.Error) -> StoreReadError:
    """The error for a store that opened but cannot be read (logged once here)."""
    logger.warning("results store %s unreadable: %s", path, error)
    return StoreReadError(f"{path} is not a readable results store ({error}); it may be corrupt, "
                          "truncated or not a FedMPT results store")


@contextmanager
def _open(path: Path) -> Iterator[ResultsStore]:
    """Open the store read-only; translate sqlite failures into ``StoreReadError``."""
    path = Path(path)
    if not path.is_file():
        raise StoreMissingError(f"no results store at {path}")
    try:
        store = ResultsStore(path, read_only=True)
    except (sqlite3.Error, OSError) as e:
        raise StoreReadError(f"cannot open the results store {path}: {e}") from e
    try:
        yield store
    except sqlite3.Error as e:
        raise _unreadable(path, e) from e
    finally:
        store.close()


def load_runs(path: Path) -> list[Row]:
    """All runs of the store, newest first.

    Parameters
    ----------
    path : Path
        The results store (``WORKDIR/aggregator/results.sqlite``).

    Returns
    -------
    list[dict[str, Any]]
        Rows of the ``runs`` table.

    Raises
    ------
    StoreMissingError
        When ``path`` does not exist.
    StoreReadError
        When ``path`` is not a readable results store.
    """
    with _open(path) as store:
        return store.runs()


def load_run(path: Path, run: Row) -> RunData:
    """Read the metrics and participation of one run.

    Parameters
    ----------
    path : Path
        The results store.
    run : dict[str, Any]
        The run's row, as returned by :func:`load_runs`.

    Returns
    -------
    RunData
        The run's rows.

    Raises
    ------
    StoreMissingError
        When ``path`` does not exist.
    StoreReadError
        When ``path`` is not a readable results store.
    """
    run_id = str(run["run_id"])
    with _open(path) as store:
        return RunData(
            run=dict(run),
            site_metrics=store.site_metrics(run_id),
            global_metrics=store.global_metrics(run_id),
            participation=store.participation(run_id),
        )


def load_qa_metrics(path: Path) -> list[Row]:
    """Every site's data-quality metrics (names starting ``qa_``) of every run, oldest first.

    Ingestion statistics describe a site's cache rather than one run, so they are read across
    runs; the page keeps each site's latest value of each metric.

    Parameters
    ----------
    path : Path
        The results store.

    Returns
    -------
    list[dict[str, Any]]
        Rows (run_id, started_at, round, phase, site, metric, value), ordered by the run's
        start, then round.

    Raises
    ------
    StoreMissingError
        When ``path`` does not exist.
    StoreReadError
        When ``path`` is not a readable results store.
    """
    path = Path(path)
    if not path.is_file():
        raise StoreMissingError(f"no results store at {path}")
    # ResultsStore reads one run at a time; this one indexed query spans runs, read-only.
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise StoreReadError(f"cannot open the results store {path}: {e}") from e
    try:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT m.run_id, r.started_at, m.round, m.phase, m.site, m.metric, m.value "
            "FROM site_metrics m JOIN runs r ON r.run_id = m.run_id "
            "WHERE m.metric LIKE ? ESCAPE '\\' ORDER BY r.started_at, m.round, m.site, m.metric",
            (QA_PREFIX.replace("_", "\\_") + "%",),
        ).fetchall()
        return [dict(row) for row in rows]
    except sqlite3.Error as e:
        raise _unreadable(path, e) from e
    finally:
        db.close()


def store_signature(path: Path) -> tuple[tuple[int, int], ...]:
    """A cheap fingerprint that changes whenever the store is written.

    The store runs in WAL mode, so a write first lands in ``<store>-wal``; the main file's
    timestamp only moves at a checkpoint. Both files are fingerprinted.

    Parameters
    ----------
    path : Path
        The results store.

    Returns
    -------
    tuple[tuple[int, int], ...]
        ``(mtime_ns, size)`` of the store and of its WAL file; ``(-1, -1)`` for a missing file.
    """
    path = Path(path)
    signature = []
    for candidate in (path, path.with_name(path.name + "-wal")):
        try:
            stat = candidate.stat()
        except OSError:
            signature.append((-1, -1))
        else:
            signature.append((stat.st_mtime_ns, stat.st_size))
    return tuple(signature)
