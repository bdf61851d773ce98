"""Data quality (hand-made and from a real ingestion), Results and the membership-inference audit, with data
and in their empty states."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from aggregator.results_store import ResultsStore
from client_site.egress import release_metrics
from client_site.ingestion import ingest_site, load_qa_metrics
from synthetic import generate_consortium
from dashboard.auth import Login
from federation.presets import get_preset

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
TIMEOUT_S = 30.0


def _open(monkeypatch: pytest.MonkeyPatch, workdir: Path, page: str) -> AppTest:
    monkeypatch.setenv("FEDMPT_WORKDIR", str(workdir))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    at.session_state["fedmpt_login"] = Login(name="lee", at=time.time())
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _text(at: AppTest) -> str:
    return "\n".join(str(getattr(e, "value", "")) for e in at.main)


def test_data_quality(monkeypatch: pytest.MonkeyPatch, full_workdir: Path) -> None:
    # Execute
    at = _open(monkeypatch, full_workdir, "views/quality.py")

    # Assert
    assert [h.value for h in at.subheader] == [
        "Rejected files by reason", "Files", "Studies and patients", "Slice spacing (mm)",
        "Intensity (HU)", "Reports", "Finding prevalence (fraction of studies)",
    ]  # fmt: skip
    rejected, files, studies, spacing, hu, reports, prevalence, provenance = (df.value for df in at.dataframe)
    assert list(rejected.index) == ["hospital-a", "hospital-b"]  # hospital-c shared nothing
    assert list(rejected.columns) == ["not_dicom", "truncated", "wrong_modality"]
    assert rejected.loc["hospital-a", "truncated"] == 5
    assert math.isnan(rejected.loc["hospital-b", "truncated"])  # suppressed: blank, not zero
    assert files.loc["hospital-b", "accepted"] == 388
    assert list(studies.columns) == ["patients", "studies"]
    assert list(spacing.columns) == ["lt1", "1to2", "2to3", "ge5"]  # bins in order, not a-z
    assert spacing.loc["hospital-b", "ge5"] == 6
    assert hu.loc["hospital-b", "p99_p50"] == 1720
    assert list(reports.columns) == ["report_coverage"]
    assert prevalence.loc["hospital-a", "nodule"] == pytest.approx(0.31)
    assert set(provenance["run_id"]) == {"run-new"}
    assert len(at.get("vega_lite_chart")) == 3  # rejections, spacing histogram, prevalence


@pytest.fixture(scope="module")
def ingested_qa(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, float]]:
    """A synthetic hospital (scouts, a second series, broken files) ingested with --qa: its qa.json and
    the qa_* metrics it releases through the egress whitelist."""
    (site,) = generate_consortium(tmp_path_factory.mktemp("consortium"), n_sites=1, patients_per_site=6, seed=0,
                                  matrix=64, progress=False, workers=1)
    ingest_site(site, site / "cache", config=get_preset("tiny").preprocess, progress=False, qa=True)
    qa = json.loads((site / "cache" / "qa.json").read_text(encoding="utf-8"))
    return qa, release_metrics("evaluate", load_qa_metrics(site / "cache"))


def test_data_quality_of_an_ingested_site(
    monkeypatch: pytest.MonkeyPatch, empty_workdir: Path, ingested_qa: tuple[dict[str, Any], dict[str, float]]
) -> None:
    # Prepare: the site's evaluate reply, recorded as the aggregator records it
    qa, released = ingested_qa
    store = ResultsStore(empty_workdir / "aggregator" / "results.sqlite")
    try:
        store.start_run("run-qa", strategy="fedavg", num_rounds=1, config={})
        store.record_site_metrics("run-qa", 1, "evaluate", "hospital-a",
                                  {"num-examples": 2.0, "val_loss": 1.5, **released})
    finally:
        store.close()

    # Execute
    at = _open(monkeypatch, empty_workdir, "views/quality.py")

    # Assert: each table shows the site's qa.json, suppressed cells blank
    tables = dict(zip([h.value for h in at.subheader], (df.value.loc["hospital-a"] for df in at.dataframe)))
    rejected = tables["Rejected files by reason"]
    for reason, count in qa["files"]["rejected_by_reason"].items():
        shown = rejected.get(reason, math.nan)
        assert shown == count if isinstance(count, int) else math.isnan(shown), reason
    assert rejected["localizer"] > 0  # the generator exports scouts
    assert (tables["Files"]["accepted"], tables["Files"]["rejected"]) == (qa["files"]["accepted"],
                                                                          qa["files"]["rejected"])
    assert tables["Slice spacing (mm)"].to_dict() == qa["slice_spacing_mm"]
    hu = tables["Intensity (HU)"]
    assert (hu["p01_p50"], hu["p99_p90"]) == (qa["hu"]["p01_across_studies"]["p50"],
                                              qa["hu"]["p99_across_studies"]["p90"])
    assert tables["Reports"]["report_coverage"] == qa["reports"]["coverage"] == 1.0
    prevalence = tables["Finding prevalence (fraction of studies)"]
    for finding, entry in qa["finding_prevalence"].items():
        assert prevalence.get(finding, math.nan) == entry["fraction"] or entry["fraction"] is None, finding
    assert set(prevalence.index) == {f for f, e in qa["finding_prevalence"].items() if e["fraction"] is not None}


def test_data_quality_empty_state(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    at = _open(monkeypatch, workdir, "views/quality.py")
    assert "No site has shared data-quality statistics yet" in at.info[0].value
    assert at.code[0].value == "fedmpt ingest SITE_DIR --qa"
    assert not at.dataframe


def test_qa_metrics_stay_off_the_per_site_metrics_page(monkeypatch: pytest.MonkeyPatch, full_workdir: Path) -> None:
    at = _open(monkeypatch, full_workdir, "views/sites.py")
    at.radio(key="metrics_phase").set_value("evaluate").run()
    assert not any(o.startswith("qa_") for o in at.selectbox(key="metric_evaluate").options)


def test_results(monkeypatch: pytest.MonkeyPatch, full_workdir: Path) -> None:
    # Execute
    at = _open(monkeypatch, full_workdir, "views/results.py")

    # Assert
    baselines, split, downstream = (df.value for df in at.dataframe)
    assert list(baselines.columns) == ["baseline", "site", "macro_auc", "finding_f1"]
    assert len(baselines) == 6
    assert list(downstream.index) == ["hospital-a", "hospital-b"]  # round 3; hospital-c refused
    assert downstream.loc["hospital-a", "probe_auc_nodule"] == pytest.approx(0.8)
    assert "num-examples" not in downstream.columns
    assert len(at.get("vega_lite_chart")) == 4  # one per baseline metric, the heatmap, the budget split
    assert len(at.get("image")) == 1
    assert len(at.get("download_button")) == 1
    assert "Row: where the model was trained" in _text(at)
    assert "ROC data not in this report" in at.info[0].value  # a report from before the ROC file
    assert at.code[0].value == f"fedmpt experiment compare --workdir {full_workdir}"


def _roc_chart(at: AppTest) -> dict[str, Any]:
    """The Vega-Lite spec of the ROC chart (the one plotting tpr against fpr)."""
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    (roc,) = [s for s in specs if '"tpr"' in json.dumps(s)]
    return roc


def test_results_roc_curves_per_finding(monkeypatch: pytest.MonkeyPatch, diagnosis_workdir: Path) -> None:
    from client_site.findings import FINDINGS
    from dashboard.reports_reader import read_roc_curves

    folder = diagnosis_workdir / "aggregator" / "reports"
    comparison = pd.read_csv(folder / "comparison.csv").set_index(["baseline", "site"])
    curves = read_roc_curves(folder / "roc_curves.csv")
    for _, curve in curves.groupby(["baseline", "site", "finding"]):  # as stored: monotone, (0,0) to (1,1)
        fpr, tpr = curve["fpr"].to_numpy(), curve["tpr"].to_numpy()
        assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
        assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()

    # Execute
    at = _open(monkeypatch, diagnosis_workdir, "views/results.py")

    # Assert: the first arm at the first site, then each other choice of the selectors
    assert "ROC curves per finding" in [h.value for h in at.subheader]
    assert at.selectbox(key="roc_arm").options == ["federated-dp-eps8", "centralized"]
    assert at.selectbox(key="roc_site").options == ["hospital-a", "external: hospital-d"]
    for arm, site in (("federated-dp-eps8", "hospital-a"), ("centralized", "external: hospital-d")):
        at.selectbox(key="roc_arm").set_value(arm).run()
        at.selectbox(key="roc_site").set_value(site).run()
        assert not at.exception and not at.warning
        assert _roc_chart(at)["layer"][0]["encoding"]["x"]["field"] == "fpr"
        table = next(df.value for df in at.dataframe if "finding" in df.value.columns).set_index("finding")
        assert list(table.index) == list(FINDINGS)
        for finding in FINDINGS:
            expected = comparison.loc[(arm, site), f"diag_auc_{finding}"]
            assert table.loc[finding, "AUC (area under the curve)"] == pytest.approx(expected, abs=1e-9)
            assert table.loc[finding, "AUC in comparison.csv"] == pytest.approx(expected, abs=1e-12)


def test_results_roc_curves_of_another_run_are_flagged(monkeypatch: pytest.MonkeyPatch,
                                                       diagnosis_workdir: Path) -> None:
    # Prepare: comparison.csv rewritten by another run, roc_curves.csv left behind
    path = diagnosis_workdir / "aggregator" / "reports" / "comparison.csv"
    table = pd.read_csv(path)
    table.loc[0, "diag_auc_nodule"] = 0.99
    table.to_csv(path, index=False)

    # Execute
    at = _open(monkeypatch, diagnosis_workdir, "views/results.py")

    # Assert
    assert len(at.warning) == 1 and "nodule" in at.warning[0].value
    assert "different runs" in at.warning[0].value


def test_results_budget_split(monkeypatch: pytest.MonkeyPatch, workdir: Path, sites: list[str]) -> None:
    # Execute
    at = _open(monkeypatch, workdir, "views/results.py")

    # Assert: conftest gives SSL a quarter of each budget; SSL spent 0.2, fine-tuning epsilon - 0.1
    assert "Budget split per stage" in [h.value for h in at.subheader]
    split = next(df.value for df in at.dataframe if "SSL configured" in df.value.columns)
    assert list(split.index) == sites
    assert list(split["SSL configured"]) == pytest.approx([0.25] * 3)
    assert list(split["fine-tuning configured"]) == pytest.approx([0.75] * 3)
    assert list(split["SSL spent"]) == pytest.approx([0.2 / 4.0, 0.2 / 1.1, 0.2 / 1.0])
    assert list(split["fine-tuning spent"]) == pytest.approx([2.4 / 4.0, 0.7 / 1.1, 0.6 / 1.0])
    assert any('"share"' in c.proto.spec for c in at.get("vega_lite_chart"))


def test_results_empty_state(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    at = _open(monkeypatch, workdir, "views/results.py")
    assert "No comparison reports" in at.info[0].value
    assert at.code[0].value == f"fedmpt experiment compare --workdir {workdir}"
    assert len(at.dataframe) == 2  # the budget split and downstream metrics from the store are still shown


def test_results_broken_matrix(monkeypatch: pytest.MonkeyPatch, full_workdir: Path) -> None:
    # Prepare
    (full_workdir / "aggregator" / "reports" / "cross_site_matrix.csv").write_bytes(b"only-a-header\n")

    # Execute
    at = _open(monkeypatch, full_workdir, "views/results.py")

    # Assert
    assert len(at.error) == 1 and "cross_site_matrix.csv" in at.error[0].value
    assert "Traceback" not in _text(at)


def test_privacy_shows_the_mia_audit(monkeypatch: pytest.MonkeyPatch, full_workdir: Path, sites: list[str]) -> None:
    # Execute
    at = _open(monkeypatch, full_workdir, "views/privacy.py")

    # Assert
    audit = at.dataframe[-1].value  # after the budget table and the refused rounds
    assert list(audit["site"]) == sites
    assert list(audit["auc"]) == pytest.approx([0.53, 0.51, 0.56])
    assert list(audit["epsilon"]) == pytest.approx([2.5, 0.8, 0.7])
    assert "run: run-new · round: 3" in _text(at)
    assert "coin flip" in _text(at)
    # one tile per site: spent / budget
    assert [m.label for m in at.metric] == sites
    assert at.metric[0].value == "ε 2.50 / 4.00"


@pytest.mark.parametrize(
    ("content", "shown"), [(None, "fedmpt audit mia --workdir"), (b"{nope", "Cannot show the audit")]
)
def test_privacy_mia_missing_or_broken(
    monkeypatch: pytest.MonkeyPatch, workdir: Path, content: bytes | None, shown: str
) -> None:
    # Prepare
    if content is not None:
        (workdir / "aggregator" / "reports").mkdir()
        (workdir / "aggregator" / "reports" / "mia.json").write_bytes(content)

    # Execute
    at = _open(monkeypatch, workdir, "views/privacy.py")

    # Assert
    assert shown in _text(at) + "\n".join(c.value for c in at.code)
    assert len(at.dataframe) == 3  # the budget table, the split per stage and the refused rounds are still there


def test_overview_shows_strategy_and_config(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    at = _open(monkeypatch, workdir, "views/overview.py")
    assert "fedprox" in at.expander[0].label
    assert at.json[0].value == '{"seed": 1}'
