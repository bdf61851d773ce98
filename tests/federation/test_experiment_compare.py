"""``fedmpt experiment compare``: every arm on the same split, own ledgers, reports the dashboard reads."""

import math

import pandas as pd
import pytest
import torch

from dashboard.reports_reader import find_reports, read_cross_site_matrix, read_table
from experiments.baselines import Experiment, ExperimentConfig, write_reports
from experiments.baselines.report import target_checks
from experiments.baselines.runner import _fedavg
from privacy.ledger import PrivacyLedger

ARMS = ["local-only", "centralized", "federated", "federated-dp-eps8"]


def test_fedavg_is_the_num_examples_weighted_mean():
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.0])}
    b = {"w": torch.tensor([4.0, 8.0]), "b": torch.tensor([3.0])}

    mean = _fedavg([(a, 1), (b, 2)])

    assert torch.allclose(mean["w"], torch.tensor([3.0, 6.0]))
    assert torch.allclose(mean["b"], torch.tensor([2.0]))


def test_target_checks_compare_dp_federation_with_centralized_and_local():
    frame = pd.DataFrame([
        {"baseline": "local-only", "site": "a", "epsilon": math.nan, "diag_auc_macro": 0.70},
        {"baseline": "centralized", "site": "a", "epsilon": math.nan, "diag_auc_macro": 0.80},
        {"baseline": "federated-dp-eps4", "site": "a", "epsilon": 3.9, "diag_auc_macro": 0.78},
        {"baseline": "federated-dp-eps16", "site": "a", "epsilon": 15.0, "diag_auc_macro": 0.5},
    ])

    lines = target_checks(frame)

    (dp_line,) = [line for line in lines if line.startswith("a,")]  # epsilon 15 > 8 is left out
    assert "0.975x centralized (target >= 0.95: met)" in dp_line
    assert "local-only 0.700 (beaten)" in dp_line


@pytest.fixture(scope="module")
def comparison(tmp_path_factory, ingested_site):
    import shutil

    from client_site.site_config import write_site_config

    root = tmp_path_factory.mktemp("experiment")
    sites = []
    for name in ("hospital-a", "hospital-b"):
        site = root / name
        shutil.copytree(ingested_site, site, ignore=shutil.ignore_patterns("dicom", "privacy"))
        write_site_config(site, name=name, epsilon=9.0, delta=1e-5, allow_non_dp=True)
        sites.append(site)
    config = ExperimentConfig(preset="tiny", rounds=1, local_steps=2, batch_size=4, epsilons=(8.0,))
    experiment = Experiment(sites, root / "runs", config)
    return experiment.run_dir, sites, config, experiment.run()


def test_every_arm_is_evaluated_at_every_site(comparison):
    _, _, _, result = comparison

    table = result.table()

    assert list(dict.fromkeys(table["baseline"])) == ARMS
    assert sorted(table.groupby("baseline").size().unique()) == [2]
    assert table["diag_auc_macro"].between(0, 1).all()
    assert table["pointing_game"].between(0, 1).all()  # the held-out patients have lesion masks
    assert set(result.cross_site) == {(i, j) for i in ("hospital-a", "hospital-b")
                                      for j in ("hospital-a", "hospital-b")}


def test_dp_arm_spends_its_own_ledger_within_target(comparison):
    run_dir, sites, config, result = comparison
    table = result.table()
    dp = table[table["baseline"] == "federated-dp-eps8"]

    for site, row in zip(sites, dp.itertuples(), strict=True):
        ledger = PrivacyLedger(run_dir / "ledgers" / "federated-dp-eps8" / f"{site.name}.jsonl")
        assert 0 < row.epsilon <= 8.0
        assert row.epsilon == pytest.approx(ledger.epsilon(delta=config.delta))
        assert not (site / "privacy" / "ledger.jsonl").exists()  # the site's own ledger untouched
    assert table[table["baseline"] != "federated-dp-eps8"]["epsilon"].isna().all()


def test_a_later_comparison_starts_from_fresh_ledgers_and_keeps_the_earlier_ones(comparison):
    run_dir, sites, config, _ = comparison
    earlier = sorted((run_dir / "ledgers").rglob("*.jsonl"))

    later = Experiment(sites, run_dir.parent, config)

    assert later.run_dir.parent == run_dir.parent and later.run_dir != run_dir
    assert not list(later.run_dir.rglob("*.jsonl"))
    assert earlier and all(p.exists() for p in earlier)


def test_reports_are_what_the_dashboard_reads(comparison, tmp_path):
    _, _, _, result = comparison

    write_reports(result, tmp_path)
    files = find_reports(tmp_path)

    assert [p.name for p in files.tables] == ["comparison.csv"]
    assert {p.name for p in files.plots} == {"comparison.png", "cross_site_matrix.png"}
    matrix = read_cross_site_matrix(files.cross_site_matrix)
    assert matrix.loc["hospital-b", "hospital-a"] == pytest.approx(
        result.cross_site[("hospital-b", "hospital-a")])
    assert len(read_table(files.tables[0])) == 2 * len(ARMS)
    assert "## Targets" in (tmp_path / "comparison.md").read_text(encoding="utf-8")
