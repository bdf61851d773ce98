"""Data-quality tables: each site's latest shared ingestion statistics (``qa_*`` site metrics).

The names are those of ``client_site.ingestion.qa.qa_metrics`` (``fedmpt ingest SITE_DIR
--qa``), after ``qa_``: ``files_<seen|accepted|rejected>``, ``rejected_<reason>``,
``series_<status>``, ``series_per_study_<n>``, ``planes_<plane>``, ``slice_spacing_<bin>``,
``slice_thickness_<bin>``, ``pixel_spacing_<bin>``, ``studies``, ``patients``,
``hu_p01_<stat>`` / ``hu_p99_<stat>``, ``report_coverage``, ``prevalence_<finding>`` ...
A statistic the site suppressed (small count) is absent, or NULL; it is shown blank, never as 0.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

from dashboard.queries import Row
from dashboard.store_reader import QA_PREFIX

__all__ = ["OTHER", "QA_GROUPS", "bin_order", "latest_qa", "qa_group_table", "qa_provenance"]

#: (title, name prefixes after ``qa_``, whether to cut the prefix off the column names), in page
#: order; a name goes to the first group with a matching prefix, else to ``OTHER``.
QA_GROUPS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("Rejected files by reason", ("rejected_",), True),
    ("Files", ("files_",), True),
    ("Studies and patients", ("studies", "patients", "gantry_"), False),
    ("Series per study", ("series_per_study_",), True),
    ("Series by status", ("series_",), True),
    ("Planes", ("planes_",), True),
    ("Slice spacing (mm)", ("slice_spacing_",), True),
    ("Slice thickness (mm)", ("slice_thickness_",), True),
    ("Pixel spacing (mm)", ("pixel_spacing_",), True),
    ("Intensity (HU)", ("hu_",), True),
    ("Reports", ("report_", "reports_"), False),
    ("Finding prevalence (fraction of studies)", ("prevalence_",), True),
)
OTHER = "Other statistics"
# "studies_with_report" is about reports, not a count of studies.
_EXACT = {"studies_with_report": "Reports", "studies_without_air": "Intensity (HU)"}
_NUMBER = r"(\d+(?:p\d+)?)"


def bin_order(label: str) -> tuple[int, float, str]:
    """Sort key of histogram bins: ``lt1`` < ``1to2`` < ``2to3`` < ``ge5`` < ``unknown``.

    Labels that are not bins (``accepted``, ``nodule``) sort alphabetically after the bins.
    """
    def number(text: str) -> float:
        return float(text.replace("p", "."))

    if match := re.fullmatch(f"lt{_NUMBER}", label):
        return (0, number(match.group(1)), label)
    if match := re.match(f"{_NUMBER}(to|plus|$)", label):
        return (1, number(match.group(1)), label)
    if match := re.fullmatch(f"ge{_NUMBER}", label):
        return (2, number(match.group(1)), label)
    if label == "unknown":
        return (3, 0.0, label)
    return (4, 0.0, label)


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
    order = {title: i for i, (title, _, _) in enumerate(QA_GROUPS)}
    order[OTHER] = len(order)
    frame["_order"] = frame["group"].map(order)
    frame = frame.sort_values(["_order", "metric", "site"], ignore_index=True)
    return frame.drop(columns="_order")


def _group(name: str) -> str:
    if name in _EXACT:
        return _EXACT[name]
    return next((title for title, prefixes, _ in QA_GROUPS if name.startswith(prefixes)), OTHER)


def _column(name: str, group: str) -> str:
    for title, prefixes, cut in QA_GROUPS:
        if title == group and cut:
            prefix = next((p for p in prefixes if name.startswith(p)), "")
            return name[len(prefix):] or name
    return name


def qa_group_table(latest: pd.DataFrame, group: str) -> pd.DataFrame:
    """One group as a table: one row per site, one column per statistic (bins in bin order)."""
    part = latest[latest["group"] == group]
    part = part.assign(statistic=[_column(m, group) for m in part["metric"]])
    table = part.pivot(index="site", columns="statistic", values="value").sort_index()
    table = table.reindex(columns=sorted(table.columns, key=bin_order))
    table.columns.name = None
    return table


def qa_provenance(latest: pd.DataFrame) -> pd.DataFrame:
    """The runs and rounds each site's shown statistics were reported in."""
    pairs = latest[["site", "run_id", "round"]].drop_duplicates()
    return pairs.sort_values(["site", "run_id", "round"], ignore_index=True)
