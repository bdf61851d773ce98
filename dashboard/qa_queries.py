"""Data-quality tables: each site's latest shared ingestion statistics (``qa_*`` site metrics).

Naming convention of the statistics a site sends (``fedmpt ingest --qa``), after ``qa_``:

- ``files_seen``, ``files_accepted``, ``files_rejected``, ``studies``, ``series`` ... counts;
- ``rejected_<reason>``: files rejected for that reason;
- ``spacing_*``, ``thickness_*``, ``series_per_study*``: geometry;
- ``hu_*``: intensity (e.g. ``hu_min``, ``hu_p99``);
- ``report_*``: report coverage;
- ``prevalence_<finding>``: fraction of studies with the finding.

A NULL value (NaN sent by the site) is a statistic the site suppressed (small count) or could
not compute; it is shown blank, never as zero.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from dashboard.queries import Row
from dashboard.store_reader import QA_PREFIX

__all__ = ["QA_GROUPS", "latest_qa", "qa_group_table", "qa_provenance"]

#: (title, prefix after ``qa_``) of each table on the page, in order; the rest go to "Other".
QA_GROUPS: tuple[tuple[str, str], ...] = (
    ("Rejected files by reason", "rejected_"),
    ("Files", "files_"),
    ("Geometry: spacing and thickness (mm)", "spacing_"),
    ("Geometry: spacing and thickness (mm)", "thickness_"),
    ("Series per study", "series_per_study"),
    ("Intensity (HU)", "hu_"),
    ("Reports", "report_"),
    ("Finding prevalence (fraction of studies)", "prevalence_"),
)
OTHER = "Other statistics"


def latest_qa(rows: Iterable[Row]) -> pd.DataFrame:
    """Each site's latest value of each ``qa_`` metric.

    Parameters
    ----------
    rows : Iterable[Mapping[str, Any]]
        Rows of ``store_reader.load_qa_metrics``, oldest first.

    Returns
    -------
    pandas.DataFrame
        Columns site, metric (without ``qa_``), group, value, run_id, round; sorted by group
        order, metric, site.
    """
    latest: dict[tuple[str, str], Row] = {}
    for row in rows:
        if str(row["metric"]).startswith(QA_PREFIX):
            latest[(str(row["site"]), str(row["metric"]))] = row  # later rows win
    records = []
    for (site, metric), row in latest.items():
        name = metric[len(QA_PREFIX):]
        records.append({"site": site, "metric": name, "group": _group(name), "value": row["value"],
                        "run_id": str(row["run_id"]), "round": int(row["round"])})
    frame = pd.DataFrame.from_records(
        records, columns=["site", "metric", "group", "value", "run_id", "round"]
    ).astype({"value": "float64"})
    order = {title: i for i, title in enumerate(dict.fromkeys(t for t, _ in QA_GROUPS))}
    order[OTHER] = len(order)
    frame["_order"] = frame["group"].map(order)
    frame = frame.sort_values(["_order", "metric", "site"], ignore_index=True)
    return frame.drop(columns="_order")


def _group(name: str) -> str:
    return next((title for title, prefix in QA_GROUPS if name.startswith(prefix)), OTHER)


def qa_group_table(latest: pd.DataFrame, group: str) -> pd.DataFrame:
    """One group as a table: one row per site, one column per statistic (prefix removed)."""
    part = latest[latest["group"] == group]
    prefixes = [p for t, p in QA_GROUPS if t == group]
    strip = prefixes[0] if len(prefixes) == 1 and prefixes[0].endswith("_") else ""
    part = part.assign(statistic=[m[len(strip):] if strip else m for m in part["metric"]])
    table = part.pivot(index="site", columns="statistic", values="value").sort_index()
    table.columns.name = None
    return table


def qa_provenance(latest: pd.DataFrame) -> pd.DataFrame:
    """The runs and rounds each site's shown statistics were reported in."""
    pairs = latest[["site", "run_id", "round"]].drop_duplicates()
    return pairs.sort_values(["site", "run_id", "round"], ignore_index=True)
