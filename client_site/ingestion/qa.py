"""Per-site data-QA statistics that are safe to share (``fedmpt ingest SITE_DIR --qa`` -> ``cache/qa.json``).

Everything is an aggregate over the site; nothing names a file, study or patient. Small counts are
suppressed so that no statistic singles out a patient:

- any count from 1 to 4 is written as ``"<5"`` (0 and counts >= 5 are exact);
- in a table (rejections by reason, histograms) where exactly one cell is ``"<5"``, the next smallest
  non-zero cell is written as ``"suppressed"``, so the hidden cell cannot be recovered from the total;
- a count whose total is also released (studies with a report, gantry-tilted studies, studies
  without air, series by status) is hidden as well when its complement (total - count) is 1 to 4,
  since the difference of two released numbers would give it;
- a fraction (report coverage, finding prevalence) is null when its count or the complement
  (total - count) is 1 to 4, and every fraction is null when the total is under 5;
- HU percentiles across studies are given only for 5 or more studies, rounded to 10 HU.

:func:`qa_metrics` flattens the shareable numbers into ``{"qa_...": float}``, which the site sends with
every evaluation reply (``client_site.site_runtime``) under the names ``client_site.egress.QA_METRICS``
lists; suppressed values are left out of it (absent key = suppressed or not applicable).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from client_site.findings import FINDINGS

MIN_COUNT = 5
LESS_THAN = f"<{MIN_COUNT}"
SUPPRESSED = "suppressed"
# (label, lower bound inclusive, upper bound exclusive) in mm.
SPACING_BINS = (("lt1", 0.0, 1.0), ("1to2", 1.0, 2.0), ("2to3", 2.0, 3.0), ("3to5", 3.0, 5.0), ("ge5", 5.0, float("inf")))
PIXEL_BINS = (("lt0p6", 0.0, 0.6), ("0p6to0p7", 0.6, 0.7), ("0p7to0p8", 0.7, 0.8), ("0p8to1", 0.8, 1.0),
              ("ge1", 1.0, float("inf")))
_AIR_HU = -900.0  # a chest CT whose 1st HU percentile is above this shows no air: suspect rescale


def suppress(count: int) -> int | str:
    """A count as written to qa.json: ``"<5"`` for 1..4, else the count."""
    return LESS_THAN if 0 < count < MIN_COUNT else int(count)


def suppress_table(counts: dict[str, int]) -> dict[str, int | str]:
    """Suppress small cells of one table, plus a second cell when a single one would be derivable."""
    out: dict[str, int | str] = {k: suppress(v) for k, v in counts.items()}
    hidden = [k for k, v in out.items() if v == LESS_THAN]
    if len(hidden) == 1:
        others = sorted((v, k) for k, v in counts.items() if v >= MIN_COUNT)
        if others:
            out[others[0][1]] = SUPPRESSED
    return out


def suppress_pair(count: int, total: int) -> tuple[int | str, int | str]:
    """A count and its complement ``total - count``, for a released ``total``: both hidden when
    either is 1 to 4 (``"<5"`` for the small one, ``"suppressed"`` for the other)."""
    rest = total - count
    if 0 < count < MIN_COUNT or 0 < rest < MIN_COUNT:
        return (LESS_THAN if 0 < count < MIN_COUNT else SUPPRESSED,
                LESS_THAN if 0 < rest < MIN_COUNT else SUPPRESSED)
    return count, rest


def fraction(count: int, total: int) -> float | None:
    """count / total rounded to 3 decimals, or None when the count or its complement is 1..4."""
    if total < MIN_COUNT or 0 < count < MIN_COUNT or 0 < total - count < MIN_COUNT:
        return None
    return round(count / total, 3)


def _histogram(values: Iterable[float | None], bins: tuple[tuple[str, float, float], ...]) -> dict[str, int]:
    counts = dict.fromkeys([label for label, _, _ in bins] + ["unknown"], 0)
    for value in values:
        label = next((lab for lab, lo, hi in bins if value is not None and lo <= value < hi), "unknown")
        counts[label] += 1
    return counts


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if len(values) < MIN_COUNT:
        return None
    p10, p50, p90 = np.percentile(np.asarray(values, dtype=np.float64), [10, 50, 90])
    return {"p10": round(float(p10), -1), "p50": round(float(p50), -1), "p90": round(float(p90), -1)}


def compute_qa(
    summary: dict[str, Any], series: list[dict[str, Any]], volumes: dict[str, dict[str, Any]],
    reports: dict[str, tuple[str, str | None]],
) -> dict[str, Any]:
    """Build the qa.json payload.

    Parameters
    ----------
    summary : dict[str, Any]
        The ``summary`` of ingest_summary.json.
    series : list[dict[str, Any]]
        The ``series`` entries of ingest_summary.json.
    volumes : dict[str, dict[str, Any]]
        Study key -> volume record of each cached study (``spacing_mm``, ``thickness_mm``,
        ``hu_percentiles``, ``plane``, ``tilt_deg``).
    reports : dict[str, tuple[str, str | None]]
        Study key -> (scrubbed body, language) of each linked report.
    """
    n_studies = len(volumes)
    per_study = Counter(e["study_key"] for e in series if e["study_key"] in volumes)
    series_counts = dict.fromkeys(("1", "2", "3", "4+"), 0)
    for n in per_study.values():
        series_counts[str(n) if n < 4 else "4+"] += 1
    # Imported here: client_site.clinical_metrics pulls in scikit-learn, which the rest of ingestion does not need.
    from client_site.clinical_metrics import extract_findings

    records = list(volumes.values())
    # The consortium's one extractor (NegEx-style, English and Chinese), as the evaluation metrics use it.
    findings = [extract_findings(body, language if language in ("en", "zh") else None)
                for body, language in reports.values()]
    n_reports = len(findings)
    prevalence = {}
    for name in FINDINGS:
        count = sum(f[name] for f in findings)
        shown: int | str = suppress(count)
        if shown != LESS_THAN and 0 < n_reports - count < MIN_COUNT:
            shown = SUPPRESSED
        prevalence[name] = {"count": shown, "fraction": fraction(count, n_reports)}
    languages = Counter(language or "unknown" for _, language in reports.values())
    p01 = [r["hu_percentiles"]["p01"] for r in records if r.get("hu_percentiles")]
    p99 = [r["hu_percentiles"]["p99"] for r in records if r.get("hu_percentiles")]
    with_report, without_report = suppress_pair(summary["studies_with_report"], n_studies)
    series_status = {k: v for k, v in summary["series"].items() if k != "seen"}
    return {
        "suppression": {"min_count": MIN_COUNT, "small": LESS_THAN, "secondary": SUPPRESSED,
                        "rule": "counts 1-4 are shown as '<5'; see client_site/ingestion/qa.py"},
        "files": {"seen": summary["files_seen"], "accepted": summary["files_accepted"],
                  "rejected": summary["files_rejected"],
                  "rejected_by_reason": suppress_table(summary["rejected_by_reason"])},
        "series": {"seen": suppress(summary["series"]["seen"]), **suppress_table(series_status)},
        "series_per_study": suppress_table(series_counts),
        "planes": suppress_table(dict(Counter(str(r.get("plane", "axial")) for r in records))),
        "gantry_tilted_studies": suppress_pair(sum(1 for r in records if r.get("tilt_deg")), n_studies)[0],
        "studies": suppress(n_studies),
        "patients": suppress(summary["patients"]),
        "slice_spacing_mm": suppress_table(_histogram((r["spacing_mm"][0] for r in records), SPACING_BINS)),
        "slice_thickness_mm": suppress_table(_histogram((r.get("thickness_mm") for r in records), SPACING_BINS)),
        "pixel_spacing_mm": suppress_table(_histogram((r["spacing_mm"][1] for r in records), PIXEL_BINS)),
        "hu": {"p01_across_studies": _percentiles(p01), "p99_across_studies": _percentiles(p99),
               "studies_without_air": suppress_pair(sum(1 for v in p01 if v > _AIR_HU), len(p01))[0]},
        "reports": {"studies_with_report": with_report,
                    "studies_without_report": without_report,
                    "coverage": fraction(summary["studies_with_report"], n_studies),
                    "unlinked_or_rejected": suppress(summary["reports"]["rejected"]),
                    "by_language": suppress_table(dict(languages))},
        "finding_prevalence": prevalence,
    }


def load_qa_metrics(cache_dir: Path) -> dict[str, float]:
    """:func:`qa_metrics` of ``cache_dir/qa.json`` (written by ``fedmpt ingest SITE_DIR --qa``).

    Raises
    ------
    FileNotFoundError
        If the site was ingested without ``--qa``; the message says to re-run with it.
    """
    path = Path(cache_dir) / "qa.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run `fedmpt ingest SITE_DIR --qa` first")
    return qa_metrics(json.loads(path.read_text(encoding="utf-8")))


def qa_metrics(qa: dict[str, Any]) -> dict[str, float]:
    """Flatten qa.json into ``{"qa_<name>": float}``; suppressed and missing values are left out.

    Names: ``qa_files_seen``, ``qa_files_rejected``, ``qa_rejected_<reason>``, ``qa_series_<status>``,
    ``qa_series_per_study_<n>``, ``qa_studies``, ``qa_patients``, ``qa_slice_spacing_<bin>``,
    ``qa_slice_thickness_<bin>``, ``qa_pixel_spacing_<bin>``, ``qa_hu_p01_p50`` (and p10/p90, p99),
    ``qa_studies_without_air``, ``qa_report_coverage``, ``qa_prevalence_<finding>``, ...
    """
    out: dict[str, float] = {}

    def put(name: str, value: Any) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"qa_{name}"] = float(value)

    for key in ("seen", "accepted", "rejected"):
        put(f"files_{key}", qa["files"][key])
    for reason, value in qa["files"]["rejected_by_reason"].items():
        put(f"rejected_{reason}", value)
    for status, value in qa["series"].items():
        put(f"series_{status}", value)
    for table in ("series_per_study", "planes", "slice_spacing_mm", "slice_thickness_mm", "pixel_spacing_mm"):
        prefix = table.removesuffix("_mm")
        for label, value in qa[table].items():
            put(f"{prefix}_{label.replace('+', 'plus')}", value)
    for key in ("studies", "patients", "gantry_tilted_studies"):
        put(key, qa[key])
    for which in ("p01", "p99"):
        for stat, value in (qa["hu"][f"{which}_across_studies"] or {}).items():
            put(f"hu_{which}_{stat}", value)
    put("studies_without_air", qa["hu"]["studies_without_air"])
    put("report_coverage", qa["reports"]["coverage"])
    put("studies_with_report", qa["reports"]["studies_with_report"])
    put("reports_unlinked_or_rejected", qa["reports"]["unlinked_or_rejected"])
    for name, entry in qa["finding_prevalence"].items():
        put(f"prevalence_{name}", entry["fraction"])
    return out
