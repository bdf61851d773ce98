"""dashboard.privacy_queries: epsilon against budget, remaining budget and the linear projection."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dashboard.privacy_queries import (
    epsilon_history,
    privacy_table,
    projected_rounds_left,
    stage_shares,
    stage_split_table,
)
from dashboard.store_reader import load_run, load_runs


@pytest.fixture
def table(workdir: Path) -> pd.DataFrame:
    path = workdir / "aggregator" / "results.sqlite"
    run = next(r for r in load_runs(path) if r["run_id"] == "run-new")
    data = load_run(path, run)
    return privacy_table(data.site_metrics, data.participation)


def test_privacy_table_numbers(table: pd.DataFrame, sites: list[str]) -> None:
    assert list(table.index) == sites
    a, b, c = (table.loc[s] for s in sites)
    # hospital-a: 2.5 of 4.0 spent; last round cost 2.5 - 1.8 = 0.7; 1.5 / 0.7 = 2.14 -> 2 rounds.
    assert a["epsilon"] == pytest.approx(2.5)
    assert a["remaining"] == pytest.approx(1.5)
    assert a["last_round_spend"] == pytest.approx(0.7)
    assert a["projected_rounds_left"] == 2
    assert a["rounds_trained"] == 3 and a["last_round"] == 3
    assert a["delta"] == pytest.approx(1e-5)
    # hospital-b: 0.3 left at 0.1 a round is exactly 3 rounds despite float rounding.
    assert b["remaining"] == pytest.approx(0.3)
    assert b["last_round_spend"] == pytest.approx(0.1)
    assert b["projected_rounds_left"] == 3
    # hospital-c trained once (0.7 of 1.0), then refused twice; its one round cost 0.7.
    assert c["epsilon"] == pytest.approx(0.7)
    assert c["remaining"] == pytest.approx(0.3)
    assert c["last_round_spend"] == pytest.approx(0.7)
    assert c["projected_rounds_left"] == 0
    assert c["failed_train_rounds"] == 2 and c["last_round"] == 1
    assert list(table["failed_train_rounds"]) == [0, 0, 2]


def test_epsilon_history(workdir: Path) -> None:
    path = workdir / "aggregator" / "results.sqlite"
    run = next(r for r in load_runs(path) if r["run_id"] == "run-new")
    history = epsilon_history(load_run(path, run).site_metrics)
    assert list(history.columns) == ["round", "site", "epsilon", "epsilon_budget"]
    assert len(history) == 3 + 3 + 1
    a = history[history["site"] == "hospital-a"]
    assert list(a["epsilon"]) == pytest.approx([1.0, 1.8, 2.5])
    assert set(a["epsilon_budget"]) == {4.0}


def test_site_that_never_trained_is_listed_without_numbers() -> None:
    replies = [{"round": 1, "phase": "train", "node_id": "1", "site": "d", "status": "failed", "reason": "x"}]
    table = privacy_table([], replies)
    assert list(table.index) == ["d"]
    assert pd.isna(table.loc["d", "epsilon"]) and pd.isna(table.loc["d", "projected_rounds_left"])
    assert table.loc["d", "failed_train_rounds"] == 1


@pytest.mark.parametrize(
    ("remaining", "spend", "expected"),
    [
        (1.5, 0.7, 2),
        (0.3, 0.1, 3),
        (1.1 - 0.8, 0.8 - 0.7, 3),  # 2.9999999999999973 in floats
        (0.0, 0.5, 0),
        (0.0, 0.0, 0),
        (1.0, 0.0, None),  # no spend measured: cannot project
        (None, 0.5, None),
        (1.0, None, None),
        (float("nan"), 0.5, None),
    ],
)
def test_projected_rounds_left(remaining: float | None, spend: float | None, expected: int | None) -> None:
    assert projected_rounds_left(remaining, spend) == expected


def test_stage_split_is_the_last_reported_value_of_each_stage() -> None:
    def row(rnd: int, site: str, metric: str, value: float) -> dict[str, object]:
        return {"round": rnd, "phase": "train", "site": site, "metric": metric, "value": value}

    rows = [row(1, "a", "epsilon_ssl", 1.0), row(1, "a", "epsilon_fine_tuning", 0.5),
            row(2, "a", "epsilon_fine_tuning", 0.9), row(1, "a", "epsilon_ssl_cap", 2.0),
            row(1, "a", "epsilon_fine_tuning_cap", 6.0)]
    table = stage_split_table(rows)
    assert table.loc["a"].to_dict() == {"SSL epsilon": 1.0, "SSL share": 2.0, "fine-tuning epsilon": 0.9,
                                        "fine-tuning share": 6.0}
    assert stage_split_table([]).empty


def _train(rnd: int, site: str, metric: str, value: float) -> dict[str, object]:
    return {"round": rnd, "phase": "train", "site": site, "metric": metric, "value": value}


def test_stage_shares_are_parts_of_each_sites_budget_as_configured_and_spent() -> None:
    # Prepare: site a splits 8 as 2 (SSL) + 6 (fine-tuning); site b has no split (both caps = budget)
    rows = [_train(1, "a", "epsilon_budget", 8.0), _train(1, "a", "epsilon_ssl", 1.0),
            _train(1, "a", "epsilon_ssl_cap", 2.0), _train(1, "a", "epsilon_fine_tuning", 0.5),
            _train(2, "a", "epsilon_fine_tuning", 3.0), _train(1, "a", "epsilon_fine_tuning_cap", 6.0),
            _train(1, "b", "epsilon_budget", 4.0), _train(1, "b", "epsilon_ssl", 0.0),
            _train(1, "b", "epsilon_ssl_cap", 4.0), _train(1, "b", "epsilon_fine_tuning", 1.0),
            _train(1, "b", "epsilon_fine_tuning_cap", 4.0)]

    # Execute
    shares = stage_shares(rows).set_index(["site", "basis", "stage"])["share"]

    # Assert
    assert shares[("a", "configured", "SSL")] == pytest.approx(0.25)
    assert shares[("a", "configured", "fine-tuning")] == pytest.approx(0.75)
    assert shares[("a", "spent", "SSL")] == pytest.approx(1.0 / 8)
    assert shares[("a", "spent", "fine-tuning")] == pytest.approx(3.0 / 8)  # its last report
    assert pd.isna(shares[("b", "configured", "SSL")]) and pd.isna(shares[("b", "configured", "fine-tuning")])
    assert shares[("b", "spent", "fine-tuning")] == pytest.approx(0.25)
    assert stage_shares([]).empty
