"""Pure functions that turn results-store rows into the dashboard's pandas tables."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = [
    "EVALUATE",
    "FAILED",
    "OK",
    "TRAIN",
    "Row",
    "current_round",
    "current_run_id",
    "failed_replies",
    "global_metric_series",
    "long_metrics_table",
    "metric_names",
    "metric_table",
    "participation_matrix",
    "runs_table",
    "site_label",
    "site_names",
]

Row = Mapping[str, Any]

TRAIN = "train"
EVALUATE = "evaluate"
OK = "ok"
FAILED = "failed"
_RUNNING = "running"


def runs_table(runs: Sequence[Row]) -> pd.DataFrame:
    """One row per run, newest first, with UTC start and finish times.

    Parameters
    ----------
    runs : Sequence[Mapping[str, Any]]
        Rows of ``ResultsStore.runs()``.

    Returns
    -------
    pandas.DataFrame
        Columns run_id, status, strategy, num_rounds, started, finished (UTC), detail.
    """
    ordered = sorted(runs, key=lambda r: float(r["started_at"]), reverse=True)
    frame = pd.DataFrame(
        {
            "run_id": [str(r["run_id"]) for r in ordered],
            "status": [str(r["status"]) for r in ordered],
            "strategy": [str(r["strategy"]) for r in ordered],
            "num_rounds": pd.Series([int(r["num_rounds"]) for r in ordered], dtype="int64"),
            "started": _utc([r["started_at"] for r in ordered]),
            "finished": _utc([r.get("finished_at") for r in ordered]),
            "detail": [r.get("status_detail") for r in ordered],
        }
    )
    return frame


def _utc(seconds: list[Any]) -> pd.Series:
    values = pd.Series([math.nan if s is None else float(s) for s in seconds], dtype="float64")
    return pd.to_datetime(values, unit="s", utc=True)


def current_run_id(runs: Sequence[Row]) -> str | None:
    """The run to show first: the newest running run, else the newest run.

    Parameters
    ----------
    runs : Sequence[Mapping[str, Any]]
        Rows of ``ResultsStore.runs()``.

    Returns
    -------
    str | None
        Its ``run_id``; None when there is no run.
    """
    running = [r for r in runs if r["status"] == _RUNNING]
    pool = running or list(runs)
    if not pool:
        return None
    return str(max(pool, key=lambda r: float(r["started_at"]))["run_id"])


def current_round(participation: Iterable[Row], site_metrics: Iterable[Row] = ()) -> int | None:
    """The latest round with a reply or a metric; None before the first reply."""
    rounds = [int(r["round"]) for r in participation] + [int(r["round"]) for r in site_metrics]
    return max(rounds) if rounds else None


def site_label(row: Row) -> str:
    """The row's site, or ``node <node_id>`` for a node that replied without a site name."""
    site = row.get("site")
    return str(site) if site else f"node {row['node_id']}"


def site_names(site_metrics: Iterable[Row], participation: Iterable[Row] = ()) -> list[str]:
    """Sorted names of the sites that reported a metric or took part (node ids for unnamed)."""
    names = {str(r["site"]) for r in site_metrics if r.get("site")}
    names |= {site_label(r) for r in participation}
    return sorted(names)


def participation_matrix(participation: Iterable[Row], phase: str) -> pd.DataFrame:
    """Who replied in each round of one phase.

    Parameters
    ----------
    participation : Iterable[Mapping[str, Any]]
        Rows of ``ResultsStore.participation(run_id)``.
    phase : str
        ``"train"`` or ``"evaluate"``.

    Returns
    -------
    pandas.DataFrame
        Index: site (sorted); columns: round numbers (sorted ints); cells ``"ok"``, ``"failed"``
        (any failed node of that site) or None when the site was not sampled that round.
    """
    rows = [r for r in participation if r["phase"] == phase]
    if not rows:
        return pd.DataFrame(index=pd.Index([], name="site", dtype="object"))
    frame = pd.DataFrame(
        {
            "site": [site_label(r) for r in rows],
            "round": [int(r["round"]) for r in rows],
            "failed": [r["status"] != OK for r in rows],
        }
    )
    status = frame.groupby(["site", "round"])["failed"].any().map({True: FAILED, False: OK})
    matrix = status.unstack("round").sort_index()
    matrix = matrix.reindex(columns=sorted(matrix.columns)).astype("object")
    return matrix.where(matrix.notna(), None)


def failed_replies(participation: Iterable[Row]) -> pd.DataFrame:
    """The replies that were not ``ok``, with their reason, oldest first.

    Returns
    -------
    pandas.DataFrame
        Columns round, phase, site, node_id, reason.
    """
    rows = sorted(
        (r for r in participation if r["status"] != OK),
        key=lambda r: (int(r["round"]), str(r["phase"]), site_label(r)),
    )
    return pd.DataFrame(
        {
            "round": pd.Series([int(r["round"]) for r in rows], dtype="int64"),
            "phase": [str(r["phase"]) for r in rows],
            "site": [site_label(r) for r in rows],
            "node_id": [str(r["node_id"]) for r in rows],
            "reason": [r.get("reason") or "(no reason given)" for r in rows],
        }
    )


def metric_names(site_metrics: Iterable[Row], phase: str) -> list[str]:
    """Sorted metric names reported in ``phase``."""
    return sorted({str(r["metric"]) for r in site_metrics if r["phase"] == phase})


def metric_table(
    site_metrics: Iterable[Row], phase: str, metric: str, sites: Sequence[str] | None = None
) -> pd.DataFrame:
    """One metric of one phase, one column per site, one row per round.

    Parameters
    ----------
    site_metrics : Iterable[Mapping[str, Any]]
        Long-format rows of ``ResultsStore.site_metrics(run_id)``.
    phase : str
        ``"train"`` or ``"evaluate"``.
    metric : str
        Metric name, e.g. ``"train_loss"`` or ``"probe_auc_nodule"``.
    sites : Sequence[str] | None
        Columns to keep, in this order; every site with the metric when None. (default: None)

    Returns
    -------
    pandas.DataFrame
        Float table indexed by round; NaN where a site reported the value as undefined (NULL).
        A selected site without any value still gets a (NaN) column.
    """
    rows = [r for r in site_metrics if r["phase"] == phase and r["metric"] == metric]
    wanted = list(sites) if sites is not None else sorted({str(r["site"]) for r in rows})
    keep = set(wanted)
    rows = [r for r in rows if str(r["site"]) in keep]
    frame = pd.DataFrame(
        {
            "round": pd.Series([int(r["round"]) for r in rows], dtype="int64"),
            "site": pd.Series([str(r["site"]) for r in rows], dtype="object"),
            "value": pd.Series([r["value"] for r in rows], dtype="float64"),
        }
    )
    table = frame.pivot(index="round", columns="site", values="value").sort_index()
    table = table.reindex(columns=wanted).astype("float64")
    table.columns.name = "site"
    return table


def global_metric_series(global_metrics: Iterable[Row], phase: str, metric: str) -> pd.Series:
    """The aggregated value of ``metric`` per round (empty when the aggregator did not record it)."""
    rows = [r for r in global_metrics if r["phase"] == phase and r["metric"] == metric]
    series = pd.Series(
        [r["value"] for r in rows],
        index=pd.Index([int(r["round"]) for r in rows], name="round", dtype="int64"),
        dtype="float64",
        name="aggregate",
    )
    return series.sort_index()


def long_metrics_table(site_metrics: Iterable[Row]) -> pd.DataFrame:
    """All per-site metrics of a run in long format: round, phase, site, metric, value."""
    rows = list(site_metrics)
    return pd.DataFrame(
        {
            "round": pd.Series([int(r["round"]) for r in rows], dtype="int64"),
            "phase": [str(r["phase"]) for r in rows],
            "site": [str(r["site"]) for r in rows],
            "metric": [str(r["metric"]) for r in rows],
            "value": pd.Series([r["value"] for r in rows], dtype="float64"),
        }
    )
