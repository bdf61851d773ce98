"""Read the aggregator's report files: baselines, the cross-site matrix and the MIA audit.

``fedmpt experiment compare --workdir DIR`` writes tables (CSV) and plots (PNG) to
``DIR/aggregator/reports/``, among them ``cross_site_matrix.csv``; ``fedmpt audit mia --workdir
DIR`` writes ``mia.json`` there. The diagnosis benchmark also writes ``roc_curves.csv``: the ROC
points of every (arm, site, finding), whose areas are the AUCs of ``comparison.csv``. Every
failure to read one becomes a ``ReportReadError`` whose message the page shows.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dashboard.errors import DashboardError

__all__ = [
    "COMPARISON",
    "ROC_CURVES",
    "CROSS_SITE_MATRIX",
    "MAX_REPORT_BYTES",
    "MIA_FILE",
    "MiaAudit",
    "ReportFiles",
    "ReportReadError",
    "find_reports",
    "read_cross_site_matrix",
    "read_mia",
    "read_roc_curves",
    "read_table",
    "reports_dir",
]

COMPARISON = "comparison.csv"
CROSS_SITE_MATRIX = "cross_site_matrix.csv"
ROC_CURVES = "roc_curves.csv"
ROC_COLUMNS = ("baseline", "site", "finding", "fpr", "tpr")
MIA_FILE = "mia.json"
#: Files larger than this are listed, not loaded into the browser.
MAX_REPORT_BYTES = 5 * 1024 * 1024


class ReportReadError(DashboardError):
    """A report file exists but cannot be read; the message names it and says why."""


def reports_dir(workdir: Path) -> Path:
    """``WORKDIR/aggregator/reports``."""
    return Path(workdir) / "aggregator" / "reports"


@dataclass(frozen=True)
class ReportFiles:
    """The report files found, by kind (each list sorted by name)."""

    tables: list[Path] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    cross_site_matrix: Path | None = None
    roc_curves: Path | None = None

    @property
    def empty(self) -> bool:
        """No baseline table, plot, matrix or ROC curves."""
        return not (self.tables or self.plots or self.cross_site_matrix or self.roc_curves)


def find_reports(folder: Path) -> ReportFiles:
    """The CSV tables, PNG plots and cross-site matrix in ``folder`` (none when it is missing)."""
    folder = Path(folder)
    if not folder.is_dir():
        return ReportFiles()
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    matrix, roc = folder / CROSS_SITE_MATRIX, folder / ROC_CURVES
    return ReportFiles(
        tables=[p for p in files if p.suffix.lower() == ".csv" and p.name not in (CROSS_SITE_MATRIX, ROC_CURVES)],
        plots=[p for p in files if p.suffix.lower() == ".png"],
        cross_site_matrix=matrix if matrix.is_file() else None,
        roc_curves=roc if roc.is_file() else None,
    )


def _check_size(path: Path) -> None:
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ReportReadError(f"cannot read {path.name}: {e.strerror or e}") from e
    if size > MAX_REPORT_BYTES:
        raise ReportReadError(
            f"{path.name} is {size / 2**20:.1f} MiB, more than the dashboard shows "
            f"({MAX_REPORT_BYTES / 2**20:.0f} MiB); open it from {path.parent}"
        )


def read_table(path: Path) -> pd.DataFrame:
    """A CSV report as a DataFrame.

    Raises
    ------
    ReportReadError
        Unreadable, too large, or not CSV.
    """
    _check_size(path)
    try:
        return pd.read_csv(path)
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as e:
        raise ReportReadError(f"cannot read {path.name} as CSV: {e}") from e


def read_cross_site_matrix(path: Path) -> pd.DataFrame:
    """The cross-site matrix: rows = where the model was trained, columns = where evaluated.

    Two layouts are read: wide (first column holds the row labels, one numeric column per
    evaluation site) and long (three columns: trained at, evaluated at, value).

    Returns
    -------
    pandas.DataFrame
        Float matrix with named index (trained at) and columns (evaluated at).

    Raises
    ------
    ReportReadError
        Unreadable, or neither layout.
    """
    raw = read_table(path)
    if raw.shape[1] < 2 or raw.empty:
        raise ReportReadError(f"{path.name} has no matrix: expected a label column and values")
    first = raw.columns[0]
    rest = raw.columns[1:]
    numeric = raw[rest].apply(pd.to_numeric, errors="coerce")
    if raw.shape[1] == 3 and not pd.api.types.is_numeric_dtype(raw[rest[0]]):
        # long layout: trained at, evaluated at, value
        value = numeric[rest[1]]
        if value.isna().all():
            raise ReportReadError(f"{path.name}: its third column holds no numbers")
        long = pd.DataFrame({"trained": raw[first].astype(str), "evaluated": raw[rest[0]].astype(str),
                             "value": value})
        matrix = long.pivot_table(index="trained", columns="evaluated", values="value", aggfunc="mean")
        matrix.index.name, matrix.columns.name = str(first), str(rest[0])
        return matrix.astype("float64")
    if numeric.isna().all().all():
        raise ReportReadError(f"{path.name} holds no numbers after its label column")
    matrix = numeric.set_axis(raw[first].astype(str), axis=0)
    matrix.index.name = str(first)
    matrix.columns.name = "evaluated at"
    return matrix.astype("float64")


def read_roc_curves(path: Path) -> pd.DataFrame:
    """The ROC points of ``roc_curves.csv``: one row per point, curves in file order.

    Returns
    -------
    pandas.DataFrame
        Columns baseline, site, finding (text), fpr, tpr (floats in [0, 1]).

    Raises
    ------
    ReportReadError
        Unreadable, a column missing, or a rate that is not a number in [0, 1].
    """
    raw = read_table(path)
    missing = [c for c in ROC_COLUMNS if c not in raw.columns]
    if missing:
        raise ReportReadError(f"{path.name} lacks the column(s) {', '.join(missing)}; "
                              f"expected {', '.join(ROC_COLUMNS)}")
    rates = raw[["fpr", "tpr"]].apply(pd.to_numeric, errors="coerce")
    if rates.isna().any().any() or not rates.stack().between(0.0, 1.0).all():
        raise ReportReadError(f"{path.name}: fpr and tpr must be numbers in [0, 1]")
    labels = raw[["baseline", "site", "finding"]].astype(str)
    return pd.concat([labels, rates.astype("float64")], axis=1)


@dataclass(frozen=True)
class MiaAudit:
    """A membership-inference audit: one row per site (and epsilon), plus its description.

    Parameters
    ----------
    results : pandas.DataFrame
        Columns site, auc, epsilon (NaN = no DP or unknown), then any other numbers given.
    details : dict[str, Any]
        Top-level scalar fields of the file (attack, run, date ...).
    """

    results: pd.DataFrame
    details: dict[str, Any]


def _records(payload: Any) -> list[dict[str, Any]]:
    """Accept a list of records, or {"results"|"sites": list | {site: record}}."""
    body = payload
    if isinstance(payload, dict):
        body = payload.get("results", payload.get("sites"))
    if isinstance(body, dict):
        body = [{"site": site, **(rec if isinstance(rec, dict) else {"auc": rec})}
                for site, rec in body.items()]
    if not isinstance(body, list) or not all(isinstance(r, dict) for r in body):
        raise ValueError("expected a list of per-site results, or an object with 'results' or 'sites'")
    return body


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def read_mia(path: Path) -> MiaAudit:
    """Read ``mia.json`` (``fedmpt audit mia``).

    The file is a list of per-site results, or an object whose ``results`` (or ``sites``) is
    such a list or a ``{site: result}`` map. Each result has ``site``, ``auc`` and ``epsilon``
    (null or ``"inf"`` for a model trained without DP); other numeric fields are kept.

    Raises
    ------
    ReportReadError
        Unreadable, not JSON, or not in that shape.
    """
    _check_size(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        records = _records(payload)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as e:
        raise ReportReadError(f"cannot read {path.name}: {e}") from e
    rows = []
    for record in records:
        if "site" not in record or "auc" not in record:
            raise ReportReadError(f"{path.name}: every result needs 'site' and 'auc', got {sorted(record)}")
        row: dict[str, Any] = {"site": str(record["site"]), "auc": _number(record["auc"]),
                               "epsilon": _number(record.get("epsilon"))}
        for key, value in record.items():
            if key not in row and isinstance(value, int | float) and not isinstance(value, bool):
                row[str(key)] = float(value)
        rows.append(row)
    results = pd.DataFrame.from_records(rows)
    if results.empty:
        results = pd.DataFrame(columns=["site", "auc", "epsilon"])
    results = results.sort_values(["site", "epsilon"], ignore_index=True, na_position="last")
    details = {}
    if isinstance(payload, dict):
        details = {str(k): v for k, v in payload.items()
                   if isinstance(v, str | int | float | bool) or v is None}
    return MiaAudit(results=results, details=details)
