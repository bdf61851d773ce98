"""Report files (baselines, cross-site matrix, MIA), data-quality rows and the site directory."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from dashboard.accepted_reports import accept_report, load_accepted
from dashboard.qa_queries import bin_order, latest_qa, qa_group_table
from dashboard.reports_reader import ReportReadError, find_reports, read_cross_site_matrix, read_mia
from dashboard.site_reader import (
    Draft,
    SiteReadError,
    Study,
    load_explanation,
    load_index,
    load_volume,
    site_name,
)
from dashboard.store_reader import load_qa_metrics


def test_find_reports(full_workdir: Path) -> None:
    files = find_reports(full_workdir / "aggregator" / "reports")
    assert [p.name for p in files.tables] == ["baselines.csv"]
    assert [p.name for p in files.plots] == ["baselines_macro_auc.png"]
    assert files.cross_site_matrix is not None and not files.empty
    assert find_reports(full_workdir / "nowhere").empty


def test_cross_site_matrix_wide_and_long(tmp_path: Path) -> None:
    wide = tmp_path / "wide.csv"
    wide.write_text("trained at,a,b\na,0.9,0.6\nb,0.5,0.8\n")
    long = tmp_path / "long.csv"
    long.write_text("trained,evaluated,auc\na,a,0.9\na,b,0.6\nb,a,0.5\nb,b,0.8\n")
    for path in (wide, long):
        matrix = read_cross_site_matrix(path)
        assert list(matrix.index) == ["a", "b"] and list(matrix.columns) == ["a", "b"]
        assert matrix.loc["b", "a"] == pytest.approx(0.5)
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\nq,not-a-number\n")
    with pytest.raises(ReportReadError, match="no numbers"):
        read_cross_site_matrix(bad)


@pytest.mark.parametrize(
    "payload",
    [
        [{"site": "a", "auc": 0.52, "epsilon": 4}, {"site": "b", "auc": 0.6, "epsilon": None}],
        {"attack": "lira", "sites": {"a": {"auc": 0.52, "epsilon": 4}, "b": {"auc": 0.6, "epsilon": "inf"}}},
    ],
)
def test_read_mia_shapes(tmp_path: Path, payload: object) -> None:
    path = tmp_path / "mia.json"
    path.write_text(json.dumps(payload))
    audit = read_mia(path)
    assert list(audit.results["site"]) == ["a", "b"]
    assert list(audit.results["auc"]) == pytest.approx([0.52, 0.6])
    assert audit.results["epsilon"][0] == 4
    assert not math.isfinite(audit.results["epsilon"][1])  # no DP


def test_read_mia_errors(tmp_path: Path) -> None:
    path = tmp_path / "mia.json"
    for content, message in (("{", "cannot read"), ('{"results": [{"auc": 1}]}', "needs 'site' and 'auc'"),
                             ('"x"', "expected a list")):
        path.write_text(content)
        with pytest.raises(ReportReadError, match=message):
            read_mia(path)


def test_latest_qa_keeps_each_sites_latest_value(full_workdir: Path) -> None:
    # Prepare: a later report from hospital-a
    from aggregator.results_store import ResultsStore

    store = ResultsStore(full_workdir / "aggregator" / "results.sqlite")
    store.record_site_metrics("run-new", 2, "evaluate", "hospital-a", {"qa_files_accepted": 420})
    store.close()

    # Execute
    latest = latest_qa(load_qa_metrics(full_workdir / "aggregator" / "results.sqlite"))

    # Assert
    files = qa_group_table(latest, "Files")
    assert files.loc["hospital-a", "accepted"] == 420 and files.loc["hospital-b", "accepted"] == 388
    assert set(latest["metric"]) >= {"rejected_truncated", "hu_p01_p50", "prevalence_nodule"}
    assert latest_qa([]).empty


def test_bin_order() -> None:
    labels = ["ge5", "unknown", "1to2", "lt1", "3to5", "0p6to0p7", "accepted"]
    assert sorted(labels, key=bin_order) == ["lt1", "0p6to0p7", "1to2", "3to5", "ge5", "unknown", "accepted"]
    assert sorted(["3plus", "2", "1"], key=bin_order) == ["1", "2", "3plus"]


def test_site_reads(site_dir: Path, site_studies: tuple[str, ...]) -> None:
    studies = load_index(site_dir)
    assert [s.study_key for s in studies] == list(site_studies)
    assert site_name(site_dir) == "hospital-a"
    volume = load_volume(site_dir, studies[0])
    assert volume.shape == (3, 12, 64, 64) and volume.dtype == np.float16
    assert load_explanation(site_dir, site_studies[1], (12, 64, 64)) is None
    with pytest.raises(SiteReadError, match="has shape"):
        load_explanation(site_dir, site_studies[0], (12, 32, 32))


def test_site_reads_stay_inside_the_cache(site_dir: Path) -> None:
    outside = Study(study_key="s1", patient_key="p", volume="../../secret.npy", report=None,
                    language=None, clinical=None)
    with pytest.raises(SiteReadError, match="outside the site's cache"):
        load_volume(site_dir, outside)
    with pytest.raises(SiteReadError, match="not a pseudonymous study key"):
        load_explanation(site_dir, "../x", (1, 1, 1))


def test_accept_report_appends_versions(site_dir: Path, site_studies: tuple[str, ...]) -> None:
    draft = Draft(findings="f", impression="i", medications=["m"], warnings=[])
    accept_report(site_dir, site_studies[0], draft, user="ana", now=0.0)
    accept_report(site_dir, site_studies[0], Draft("f2", "i2", [], []), user="lee", now=60.0)
    versions = load_accepted(site_dir, site_studies[0])
    assert [(v["accepted_by"], v["accepted_at"], v["findings"]) for v in versions] == [
        ("ana", "1970-01-01T00:00:00Z", "f"), ("lee", "1970-01-01T00:01:00Z", "f2")]
