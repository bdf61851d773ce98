"""The results store keeps per-site metrics and participation, NaN as NULL."""

import math

import pytest

from aggregator.results_store import ResultsStore


def test_round_trip_per_site_metrics(tmp_path):
    store = ResultsStore(tmp_path / "results.sqlite")
    store.start_run("run-1", strategy="fedavg", num_rounds=2, config={"lr": 0.01})
    store.record_site_metrics("run-1", 1, "train", "hospital-a", {"epsilon": 1.5, "train_loss": 2.0})
    store.record_site_metrics("run-1", 1, "evaluate", "hospital-a", {"probe_auc_nodule": math.nan})
    store.record_participation(
        "run-1", 1, "train", node_id="7", site="hospital-b", status="failed", reason="budget"
    )
    store.finish_run("run-1", status="completed")
    store.close()

    reader = ResultsStore(tmp_path / "results.sqlite", read_only=True)
    rows = {(r["phase"], r["metric"]): r["value"] for r in reader.site_metrics("run-1")}
    assert rows[("train", "epsilon")] == 1.5
    assert rows[("evaluate", "probe_auc_nodule")] is None
    assert reader.participation("run-1")[0]["reason"] == "budget"
    assert reader.runs()[0]["status"] == "completed"


def test_read_only_store_must_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="fedmpt demo"):
        ResultsStore(tmp_path / "missing.sqlite", read_only=True)


def test_a_node_named_later_names_its_earlier_rows_of_that_run_only(tmp_path):
    store = ResultsStore(tmp_path / "results.sqlite")
    for run in ("run-1", "run-2"):
        store.start_run(run, strategy="fedavg", num_rounds=1, config={})
        store.record_participation(run, 1, "train", node_id="7", site=None, status="failed", reason="budget")
    store.record_participation("run-1", 1, "train", node_id="8", site=None, status="failed", reason="x")

    store.name_node("run-1", "7", "hospital-c")

    named = {(r["node_id"], r["site"]) for r in store.participation("run-1")}
    assert named == {("7", "hospital-c"), ("8", None)}
    assert store.participation("run-2")[0]["site"] is None
