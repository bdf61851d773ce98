"""2 sites x 2 rounds through Flower's real simulation engine, checked in the results store."""

import subprocess
import sys

import pytest

from aggregator.results_store import ResultsStore
from client_site.ingestion import ingest_site, load_qa_metrics
from client_site.layout import SiteLayout
from client_site.site_config import write_site_config
from synthetic import generate_consortium, phi_values
from federation.presets import get_preset
from privacy.ledger import PrivacyLedger

# Epsilon after rounds 1 and 2 (2 steps, sigma 1.0, q = 4/6): 6.07 and 8.71, so hospital-b
# (budget 7) must refuse round 2 while hospital-a (budget 10) takes both.
BUDGETS = {"hospital-a": 10.0, "hospital-b": 7.0}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("e2e")
    site_dirs = generate_consortium(workdir / "sites", n_sites=2, patients_per_site=8, seed=3,
                                    matrix=64, progress=False)
    for site_dir in site_dirs:
        write_site_config(site_dir, name=site_dir.name, epsilon=BUDGETS[site_dir.name], delta=1e-5)
        ingest_site(site_dir, SiteLayout(site_dir).cache_dir,
                    config=get_preset("tiny").preprocess, progress=False, qa=True)
    # The real command line, in its own process, so that its whole output (Ray workers
    # included) can be searched for PHI.
    command = [sys.executable, "-m", "cli", "federate", *map(str, site_dirs),
               "--workdir", str(workdir), "--run-name", "e2e", "--rounds", "2",
               "--preset", "tiny", "--local-steps", "2", "--expected-batch-size", "4",
               "--noise-multiplier", "1.0", "--min-sites", "1"]  # hospital-b alone refuses round 2
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=workdir)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    store = ResultsStore(workdir / "aggregator" / "results.sqlite", read_only=True)
    yield workdir, site_dirs, store, done.stdout + done.stderr
    store.close()


def _metric(store, site, phase, metric, round):
    rows = [r for r in store.site_metrics("e2e")
            if (r["site"], r["phase"], r["metric"], r["round"]) == (site, phase, metric, round)]
    return rows[0]["value"] if rows else None


def test_every_site_reports_metrics_every_round(finished_run):
    _, _, store, _ = finished_run
    assert store.runs()[0]["status"] == "completed"
    for round in (1, 2):
        for site in BUDGETS:
            assert _metric(store, site, "evaluate", "val_loss", round) > 0
            assert _metric(store, site, "evaluate", "num-examples", round) >= 1
    assert _metric(store, "hospital-a", "train", "epsilon", 2) > _metric(
        store, "hospital-a", "train", "epsilon", 1) > 0


def test_sites_share_data_quality_statistics_kept_per_site(finished_run):
    _, site_dirs, store, _ = finished_run
    for site_dir in site_dirs:
        shared = {r["metric"]: r["value"] for r in store.site_metrics("e2e")
                  if (r["site"], r["phase"], r["round"]) == (site_dir.name, "evaluate", 2)
                  and r["metric"].startswith("qa_")}
        assert shared == load_qa_metrics(SiteLayout(site_dir).cache_dir)  # exactly the site's qa.json
        assert shared["qa_studies"] >= 8 and shared["qa_files_seen"] > shared["qa_files_accepted"] > 0
    assert not [r for r in store.global_metrics("e2e") if r["metric"].startswith("qa_")]  # never averaged


def test_round_past_site_budget_is_refused_and_recorded(finished_run):
    _, site_dirs, store, _ = finished_run
    refused = [p for p in store.participation("e2e") if p["status"] == "failed"]
    assert [(p["round"], p["phase"], p["site"]) for p in refused] == [(2, "train", "hospital-b")]
    assert "budget" in refused[0]["reason"]
    ledger = PrivacyLedger(SiteLayout(site_dirs[1]).ledger_path)
    assert ledger.epsilon(delta=1e-5) == pytest.approx(_metric(store, "hospital-b", "train", "epsilon", 1))
    assert ledger.epsilon(delta=1e-5) <= BUDGETS["hospital-b"]


def test_no_phi_in_cache_store_checkpoints_or_logs(finished_run):
    workdir, site_dirs, _, output = finished_run
    assert "hospital-a round 2" in output  # the site logs did reach the captured output
    shared = [p for p in (workdir / "aggregator").rglob("*") if p.is_file()]
    for site_dir in site_dirs:
        phi = {v for v in phi_values(site_dir) if len(v) >= 4}
        assert phi
        cache_files = [p for p in SiteLayout(site_dir).cache_dir.rglob("*") if p.is_file()]
        for path in cache_files + shared:
            blob = path.read_bytes()
            leaked = [v for v in phi if v.encode("utf-8") in blob]
            assert not leaked, f"PHI {leaked[:3]} found in {path}"
        assert not [v for v in phi if v in output], "PHI found in the run's output"
