"""dashboard.queries on a store filled through ResultsStore's write API."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from dashboard import queries
from dashboard.store_reader import RunData, load_run, load_runs


@pytest.fixture
def run_new(workdir: Path) -> RunData:
    path = workdir / "aggregator" / "results.sqlite"
    runs = load_runs(path)
    return load_run(path, next(r for r in runs if r["run_id"] == "run-new"))


def test_runs_table_and_current_run(workdir: Path) -> None:
    # Prepare
    runs = load_runs(workdir / "aggregator" / "results.sqlite")

    # Execute
    table = queries.runs_table(runs)

    # Assert
    assert list(table["run_id"]) == ["run-new", "run-old"]
    assert list(table["status"]) == ["running", "completed"]
    assert list(table["strategy"]) == ["fedprox", "fedavg"]
    assert list(table["num_rounds"]) == [3, 1]
    assert pd.isna(table.loc[0, "finished"]) and not pd.isna(table.loc[1, "finished"])
    assert queries.current_run_id(runs) == "run-new"


def test_current_run_falls_back_to_newest_when_none_is_running() -> None:
    runs = [
        {"run_id": "a", "status": "completed", "started_at": 1.0},
        {"run_id": "b", "status": "failed", "started_at": 2.0},
    ]
    assert queries.current_run_id(runs) == "b"
    assert queries.current_run_id([]) is None


def test_current_round_and_sites(run_new: RunData, sites: list[str]) -> None:
    assert queries.current_round(run_new.participation, run_new.site_metrics) == 3
    assert queries.current_round([], []) is None
    assert queries.site_names(run_new.site_metrics, run_new.participation) == sites


def test_participation_matrix(run_new: RunData, sites: list[str]) -> None:
    # Execute
    train = queries.participation_matrix(run_new.participation, queries.TRAIN)
    evaluate = queries.participation_matrix(run_new.participation, queries.EVALUATE)

    # Assert
    assert list(train.index) == sites and list(train.columns) == [1, 2, 3]
    assert list(train.loc["hospital-a"]) == ["ok", "ok", "ok"]
    assert list(train.loc["hospital-c"]) == ["ok", "failed", "failed"]
    assert list(evaluate.loc["hospital-c"]) == ["ok", None, None]  # not sampled after refusing
    assert queries.participation_matrix([], queries.TRAIN).empty


def test_participation_matrix_names_nodes_without_site() -> None:
    rows = [{"round": 1, "phase": "train", "node_id": "7", "site": None, "status": "failed", "reason": None}]
    matrix = queries.participation_matrix(rows, "train")
    assert matrix.loc["node 7", 1] == "failed"


def test_failed_replies_keep_the_reason(run_new: RunData, refusal: str) -> None:
    failed = queries.failed_replies(run_new.participation)
    assert list(failed["round"]) == [2, 3]
    assert set(failed["site"]) == {"hospital-c"}
    assert set(failed["reason"]) == {refusal}


def test_metric_table_is_wide_per_site(run_new: RunData, sites: list[str]) -> None:
    # Execute
    loss = queries.metric_table(run_new.site_metrics, "train", "train_loss")
    auc = queries.metric_table(run_new.site_metrics, "evaluate", "probe_auc_nodule", ["hospital-b", "hospital-a"])

    # Assert
    assert list(loss.columns) == sites and list(loss.index) == [1, 2, 3]
    assert loss.loc[2, "hospital-b"] == pytest.approx(2.0)
    assert math.isnan(loss.loc[2, "hospital-c"])  # refused: no row
    assert list(auc.columns) == ["hospital-b", "hospital-a"]
    assert auc["hospital-b"].isna().all()  # NaN stored as NULL stays undefined
    assert auc.loc[3, "hospital-a"] == pytest.approx(0.8)


def test_metric_names_and_long_table(run_new: RunData) -> None:
    assert "epsilon" in queries.metric_names(run_new.site_metrics, "train")
    assert queries.metric_names(run_new.site_metrics, "evaluate") == ["num-examples", "probe_auc_nodule", "val_loss"]
    long = queries.long_metrics_table(run_new.site_metrics)
    assert list(long.columns) == ["round", "phase", "site", "metric", "value"]
    assert len(long) == len(run_new.site_metrics)


def test_global_metric_series(run_new: RunData) -> None:
    series = queries.global_metric_series(run_new.global_metrics, "train", "train_loss")
    assert list(series.index) == [1, 2, 3]
    assert series[2] == pytest.approx(1.0)
    assert queries.global_metric_series(run_new.global_metrics, "evaluate", "val_loss").empty
