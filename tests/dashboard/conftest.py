"""A small results store, filled through ResultsStore's write API, for the dashboard tests."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from aggregator.results_store import ResultsStore

REFUSAL = "privacy budget exceeded: epsilon 1.400 > budget 1.0 (delta=1e-05); refused before training"

# Cumulative epsilon after each trained round; hospital-c refuses rounds 2 and 3.
EPSILON = {
    "hospital-a": {1: 1.0, 2: 1.8, 3: 2.5},
    "hospital-b": {1: 0.5, 2: 0.7, 3: 0.8},
    "hospital-c": {1: 0.7},
}
BUDGET = {"hospital-a": 4.0, "hospital-b": 1.1, "hospital-c": 1.0}
SITES = sorted(EPSILON)


def fill_store(path: Path) -> None:
    """Write an older completed run and a running 3-round run with three sites."""
    store = ResultsStore(path)
    try:
        store.start_run("run-old", strategy="fedavg", num_rounds=1, config={"seed": 0})
        store.record_participation("run-old", 1, "train", node_id="n1", site="hospital-a", status="ok")
        store.finish_run("run-old", status="completed")

        store.start_run("run-new", strategy="fedprox", num_rounds=3, config={"seed": 1})
        for rnd in (1, 2, 3):
            for node, site in enumerate(SITES):
                eps = EPSILON[site].get(rnd)
                if eps is None:
                    store.record_participation(
                        "run-new", rnd, "train", node_id=f"n{node}", site=site,
                        status="failed", reason=REFUSAL,
                    )  # fmt: skip
                    continue
                store.record_participation("run-new", rnd, "train", node_id=f"n{node}", site=site, status="ok")
                store.record_site_metrics(
                    "run-new", rnd, "train", site,
                    {
                        "train_loss": 2.0 / rnd + node, "epsilon": eps, "delta": 1e-5,
                        "epsilon_budget": BUDGET[site], "num-examples": 10.0, "steps": 5.0,
                        "sample_rate": 0.1,
                    },
                )  # fmt: skip
                store.record_participation("run-new", rnd, "evaluate", node_id=f"n{node}", site=site, status="ok")
                store.record_site_metrics(
                    "run-new", rnd, "evaluate", site,
                    {
                        "val_loss": 3.0 / rnd + node,
                        # hospital-b has no nodule in its validation set: undefined AUC.
                        "probe_auc_nodule": math.nan if site == "hospital-b" else 0.5 + 0.1 * rnd,
                        "num-examples": 4.0,
                    },
                )  # fmt: skip
            store.record_global_metrics("run-new", rnd, "train", {"train_loss": 2.0 / rnd})
    finally:
        store.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A workdir whose results store holds the two runs of :func:`fill_store`."""
    fill_store(tmp_path / "aggregator" / "results.sqlite")
    return tmp_path


# Tests reach these through fixtures, not `import conftest`, which breaks under
# --import-mode=importlib and when another test folder gets a conftest.py too.
@pytest.fixture
def sites() -> list[str]:
    """The sites of :func:`fill_store`, sorted."""
    return list(SITES)


@pytest.fixture
def refusal() -> str:
    """The reason hospital-c gives when it refuses a round."""
    return REFUSAL


@pytest.fixture
def fill() -> Callable[[Path], None]:
    """:func:`fill_store`, to fill a store at a path of the test's choosing."""
    return fill_store
