"""The diagnosis benchmark: every arm scored at every site and externally, with CIs; public scaling."""

from __future__ import annotations

import math

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from client_site.findings import FINDINGS
from dashboard.reports_reader import find_reports
from experiments.baselines.diagnosis import EXTERNAL_PREFIX, DiagnosisBenchmark, DiagnosisBenchmarkConfig
from experiments.baselines.features import PatientFeatures, PublicScaler, SiteFeatures
from experiments.baselines.head_arms import HeadTraining
from experiments.baselines.report import COMPARISON_CSV, ROC_CSV, Comparison, write_reports
from experiments.baselines.ssl_probe import probe_arms

DENSITY_WIDTH = 88
"""Density columns of the hand-made groups: the benchmark's machinery does not depend on the width
of the model's densitometry, so the signal-to-noise of these groups stays fixed when it grows."""


def _group(rng: np.random.Generator, n: int, shift: float = 0.0, embedded: float = 0.0) -> PatientFeatures:
    """Findings that shift the first five density features by 1.5 (plus a site offset) and the
    first five embedding features by ``embedded``."""
    truth = rng.integers(0, 2, size=(n, len(FINDINGS))).astype(np.float32)
    density = rng.normal(size=(n, DENSITY_WIDTH)).astype(np.float32) + shift
    density[:, :len(FINDINGS)] += 1.5 * truth
    embedding = rng.normal(size=(n, 8)).astype(np.float32)
    embedding[:, :len(FINDINGS)] += embedded * truth
    return PatientFeatures(embedding=embedding, density=density, weak_labels=truth, truth=truth,
                           has_report=np.ones(n, dtype=np.float32))


@pytest.fixture(scope="module")
def comparison():
    rng = np.random.default_rng(0)
    sites = [SiteFeatures(f"s{i}", _group(rng, 60, 0.1 * i), _group(rng, 40, 0.1 * i)) for i in range(2)]
    external = SiteFeatures("ext", _group(rng, 0), _group(rng, 50, 0.3))
    config = DiagnosisBenchmarkConfig(epsilons=(8.0,), training=HeadTraining(rounds=2, local_steps=5),
                                      bootstrap_samples=50)
    return DiagnosisBenchmark(sites, external, config).run()


def test_every_arm_is_scored_at_every_site_and_externally(comparison):
    table = comparison.table()
    arms = ["local-only", "local-only-dp-eps8", "centralized", "federated", "federated-dp-eps8",
            "floor-chest-densitometry-dp-eps8"]
    assert list(dict.fromkeys(table["baseline"])) == arms
    for arm in arms:
        assert list(table[table["baseline"] == arm]["site"]) == ["s0", "s1", EXTERNAL_PREFIX + "ext"]
    assert table["diag_auc_macro"].between(0, 1).all()
    assert (table["diag_auc_macro_ci_low"] <= table["diag_auc_macro"]).all()
    assert (table["diag_auc_macro"] <= table["diag_auc_macro_ci_high"]).all()
    assert set(comparison.cross_site) >= {("s0", "s1"), ("s1", "s0"), ("s0", EXTERNAL_PREFIX + "ext")}


def test_dp_arms_report_the_epsilon_spent_at_training_sites_only(comparison):
    table = comparison.table().set_index(["baseline", "site"])
    for site in ("s0", "s1"):
        assert table.loc[("federated-dp-eps8", site), "epsilon"] == pytest.approx(8.0, abs=0.05)
    assert math.isnan(table.loc[("federated-dp-eps8", EXTERNAL_PREFIX + "ext"), "epsilon"])
    assert math.isnan(table.loc[("federated", "s0"), "epsilon"])


def test_the_heads_learn_the_signal(comparison):
    table = comparison.table().set_index(["baseline", "site"])
    assert table.loc[("federated", EXTERNAL_PREFIX + "ext"), "diag_auc_macro"] > 0.75


def test_public_scaler_standardises_with_public_statistics_only():
    rng = np.random.default_rng(1)
    public, site = _group(rng, 200, 5.0), _group(rng, 30, 5.0)
    scaler = PublicScaler.fit(public)
    scaled = scaler.apply(public)
    assert np.allclose(scaled.density.mean(axis=0), 0, atol=1e-4)
    assert np.allclose(scaled.embedding.std(axis=0), 1, atol=1e-3)
    again = scaler.apply(site)  # a site is shifted by the public statistics, never its own
    assert np.allclose(again.density, (site.density - scaler.mean[:DENSITY_WIDTH]) / scaler.scale[:DENSITY_WIDTH])


def test_the_roc_points_of_every_row_integrate_to_its_auc(comparison, tmp_path: Path):
    # Execute
    write_reports(comparison, tmp_path)

    # Assert: what the Results page reads back from disk; the ROC file is not one more table
    files = find_reports(tmp_path)
    assert [p.name for p in files.tables] == [COMPARISON_CSV] and files.roc_curves == tmp_path / ROC_CSV
    table = pd.read_csv(tmp_path / COMPARISON_CSV)
    roc = pd.read_csv(tmp_path / ROC_CSV)
    assert len(roc.groupby(["baseline", "site", "finding"])) == len(table) * len(FINDINGS)
    for _, row in table.iterrows():
        for finding in FINDINGS:
            curve = roc[(roc["baseline"] == row["baseline"]) & (roc["site"] == row["site"])
                        & (roc["finding"] == finding)]
            fpr, tpr = curve["fpr"].to_numpy(), curve["tpr"].to_numpy()
            assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
            assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()
            # the local-only external row is the best site's model: its curve, no other
            assert np.trapezoid(tpr, fpr) == pytest.approx(row[f"diag_auc_{finding}"], abs=1e-9)


def test_a_run_without_roc_points_removes_an_older_runs_file(comparison, tmp_path: Path):
    write_reports(comparison, tmp_path)
    write_reports(replace(comparison, roc_curves=[]), tmp_path)
    assert not (tmp_path / ROC_CSV).exists()


def test_the_ssl_probe_reads_the_embedding_alone():
    # Prepare: the same patients' truth behind an uninformative and an informative embedding
    config = DiagnosisBenchmarkConfig(epsilons=(8.0,), training=HeadTraining(rounds=2, local_steps=5),
                                      bootstrap_samples=20)

    def bench(embedded: float) -> DiagnosisBenchmark:
        rng = np.random.default_rng(3)
        sites = [SiteFeatures(f"s{i}", _group(rng, 80, embedded=embedded), _group(rng, 60, embedded=embedded))
                 for i in range(2)]
        return DiagnosisBenchmark(sites, SiteFeatures("ext", _group(rng, 0), _group(rng, 60, embedded=embedded)),
                                  config)

    out = Comparison(rows=[], cross_site={}, settings={})

    # Execute
    probe_arms(bench(0.0), out, "initial-encoder")
    probe_arms(bench(2.0), out, "ssl-encoder")

    # Assert: the densitometry signal does not reach the probe; the embedding's does
    table = out.table().groupby("baseline", sort=False)["diag_auc_macro"].mean()
    assert list(table.index) == ["probe-initial-encoder", "probe-initial-encoder-dp-eps8",
                                 "probe-ssl-encoder", "probe-ssl-encoder-dp-eps8"]
    assert table["probe-initial-encoder"] < 0.65 and table["probe-initial-encoder-dp-eps8"] < 0.65
    assert table["probe-ssl-encoder"] > 0.8 and table["probe-ssl-encoder-dp-eps8"] > 0.75
    assert len(out.roc_curves) > 0
