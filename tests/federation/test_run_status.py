"""`fedmpt rounds status` / `results`: every registered site in every phase, train first, plain words."""

from pathlib import Path

from aggregator.results_store import ResultsStore
from federation.deploy.status import NOT_SENT, describe, participation_rows, results_report


def _store(root: Path) -> None:
    (root / "aggregator").mkdir(parents=True)
    store = ResultsStore(root / "aggregator" / "results.sqlite")
    store.start_run("r", strategy="fedavg", num_rounds=1, config={})
    store.record_participation("r", 1, "evaluate", node_id="1", site="site-a", status="ok")
    store.record_participation("r", 1, "train", node_id="1", site="site-a", status="ok")
    store.record_participation("r", 1, "train", node_id="2", site="site-b", status="failed",
                               reason="app bundle ab12 is not approved by this site")
    store.record_site_metrics("r", 1, "train", "site-a",
                              {"epsilon": 0.8, "epsilon_budget": 8.0, "train_loss": float("nan")})
    store.finish_run("r", status="failed", detail="QuorumNotMet: round 1: 1 of the required 2 site(s) trained")
    store.close()


def test_every_registered_site_has_a_row_per_phase_train_first(tmp_path):
    _store(tmp_path)
    store = ResultsStore(tmp_path / "aggregator" / "results.sqlite", read_only=True)
    rows = participation_rows(store.participation("r"), ["site-a", "site-b", "site-c"])
    store.close()

    assert [(r["phase"], r["site"]) for r in rows] == [
        ("train", "site-a"), ("train", "site-b"), ("train", "site-c"),
        ("evaluate", "site-a"), ("evaluate", "site-b"), ("evaluate", "site-c")]
    assert [describe(r) for r in rows[:3]] == [
        "trained", "failed: app bundle ab12 is not approved by this site", NOT_SENT]


def test_results_name_the_failure_and_each_site_without_python_reprs(tmp_path):
    _store(tmp_path)

    text = results_report(tmp_path, "r")["text"]

    assert text.splitlines()[0] == ("run r: FAILED: QuorumNotMet: round 1: 1 of the required 2 "
                                    "site(s) trained")
    assert "train/train_loss n/a" in text  # a NaN metric, stored as NULL
    assert "round 1 train: failed: app bundle ab12 is not approved by this site" in text
    assert "None" not in text
