"""SecAgg+ rounds on Flower's simulation engine: 4 sites, the aggregator sees only the mean update,
a drop-out is unmasked, and a round below ``min_sites`` fails the run."""

import shutil

import numpy as np
import pytest
import torch

from aggregator.checkpoints import latest_checkpoint
from aggregator.quorum import QuorumNotMet
from aggregator.results_store import ResultsStore
from client_site.ingestion import ingest_site
from client_site.layout import SiteLayout
from client_site.site_config import write_site_config
from client_site.site_runtime import SiteRuntime
from synthetic import generate_consortium
from federation import secagg_server
from federation.config import FederationConfig
from experiments.mia_audit import audit_run
from federation.presets import get_preset
from federation.secagg_client import NORM_BOUND_KEY, SecureSiteClient
from federation.server_app import initial_arrays
from federation.simulation import run_in_simulation
from federation.site_binding import SIMULATION_AGGREGATOR_KEY_ENV, SIMULATION_SITES_ENV
from privacy.ledger import PrivacyLedger

# A round costs about 5.9. hospital-d's budget fits no round: it drops out of round 1 after
# SecAgg+ has started, so its masks must be removed from the survivors' shares (3 of the
# required 3 train). hospital-c's fits round 1 only: round 2 has 2 of the required 3 masked
# updates, so it must fail before anything is unmasked, aggregated or checkpointed.
BUDGETS = {"hospital-a": 20.0, "hospital-b": 20.0, "hospital-c": 7.0, "hospital-d": 3.0}
TRAINED_ROUND_1 = ("hospital-a", "hospital-b", "hospital-c")
BOUND = 1.0
CONFIG = dict(run_name="secagg", num_rounds=2, min_sites=3, model_preset="tiny", local_steps=2,
              expected_batch_size=4, noise_multiplier=1.0, secure_aggregation=True,
              update_norm_bound=BOUND)


@pytest.fixture(scope="module")
def secure_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("secagg")
    generated = generate_consortium(root / "generated", n_sites=4, patients_per_site=8, seed=3,
                                    matrix=64, progress=False)
    sites, replicas = [], []
    for site_dir in generated:
        ingest_site(site_dir, SiteLayout(site_dir).cache_dir, config=get_preset("tiny").preprocess,
                    progress=False)
        for folder, out in ((root / "sites", sites), (root / "replica", replicas)):
            copy = folder / site_dir.name
            shutil.copytree(site_dir, copy, ignore=shutil.ignore_patterns("dicom"))
            write_site_config(copy, name=site_dir.name, epsilon=BUDGETS[site_dir.name], delta=1e-5)
            with (copy / "site.toml").open("a", encoding="utf-8") as handle:
                handle.write("\n[testing]\ndp_seed = 5\n")  # the replay below redraws the same noise
            out.append(copy)
    config = FederationConfig(workdir=str(root / "work"), **CONFIG)
    seen = []  # what the aggregator's strategy receives in each fit result
    original = secagg_server.SecureFedAvg.aggregate_fit

    def spy(self, server_round, results, failures):
        seen.append((server_round, [[a.copy() for a in _ndarrays(r.parameters)] for _, r in results]))
        return original(self, server_round, results, failures)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(secagg_server.SecureFedAvg, "aggregate_fit", spy)
        for name in (SIMULATION_SITES_ENV, SIMULATION_AGGREGATOR_KEY_ENV):
            mp.setenv(name, "")  # restored afterwards: the launcher sets both
        with pytest.raises(QuorumNotMet) as failed:  # the ServerApp's error, re-raised by Flower
            run_in_simulation(config, sites)
    store = ResultsStore(config.aggregator_dir / "results.sqlite", read_only=True)
    yield config, sites, replicas, str(failed.value), store, seen
    store.close()


def _ndarrays(parameters):
    from flwr.common import parameters_to_ndarrays
    return parameters_to_ndarrays(parameters)


def test_round_below_min_sites_fails_the_run_before_unmasking(secure_run):
    config, _, _, error, store, seen = secure_run
    run = next(r for r in store.runs() if r["run_id"] == "secagg")
    assert run["status"] == "failed" and run["strategy"] == "fedavg+secagg"
    assert "round 2: 2 of the required 3 site(s) trained" in run["status_detail"], error
    assert [rnd for rnd, _ in seen] == [1]  # round 2 never reached the strategy
    assert latest_checkpoint(config.checkpoint_dir).name == "round_0001.pt"
    epsilons = {r["site"]: r["value"] for r in store.site_metrics("secagg")
                if (r["phase"], r["metric"], r["round"]) == ("train", "epsilon", 1)}
    assert set(epsilons) == set(TRAINED_ROUND_1) and all(0 < e <= 7.0 for e in epsilons.values())
    refused = sorted((p["round"], p["reason"]) for p in store.participation("secagg") if p["status"] == "failed")
    assert [rnd for rnd, _ in refused] == [1, 2, 2]  # d in round 1; c and d in round 2
    assert all("budget" in reason for _, reason in refused)
    assert "hospital-d" in refused[0][1] and any("hospital-c" in reason for _, reason in refused[1:])


def test_aggregator_sees_only_the_mean_of_the_clipped_site_updates(secure_run):
    # Prepare: replay round 1 at each site (same site test seed, fresh ledgers) to get what each sent
    config, _, replicas, _, _, seen = secure_run
    initial = [t.numpy() for t in initial_arrays(config).to_torch_state_dict().values()]
    request = {**config.site_request(), "server-round": 1, NORM_BOUND_KEY: BOUND}
    torch.set_num_threads(1)
    updates, weights = [], []
    for replica in replicas[:len(TRAINED_ROUND_1)]:
        update, n, _ = SecureSiteClient(SiteRuntime(replica)).fit(initial, request)
        updates.append(update)
        weights.append(n)
    expected = [sum(w * u[i] for w, u in zip(weights, updates)) / sum(weights) for i in range(len(initial))]
    # Execute: what the strategy received in round 1, and the model it published
    (round1, received), *_ = seen
    published = torch.load(config.checkpoint_dir / "round_0001.pt", weights_only=True)["model"]
    # Assert: every result holds the same unmasked mean, never a site's own update
    assert round1 == 1 and len(received) == len(TRAINED_ROUND_1)
    for result in received[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(result, received[0]))
    for update in updates:
        assert max(float(np.abs(a - b).max()) for a, b in zip(received[0], update)) > 1e-3
    # the mean is exact up to SecAgg+'s fixed-point quantization
    error = max(float(np.abs(a - b).max()) for a, b in zip(received[0], expected))
    assert error < 1e-4
    new_global = [published[k].numpy() for k in published]
    assert max(float(np.abs(g - (i + e)).max()) for g, i, e in zip(new_global, initial, expected)) < 1e-4


def test_dropped_site_spent_nothing_more_and_audit_runs(secure_run):
    config, sites, _, _, _, _ = secure_run
    ledger_c = PrivacyLedger(SiteLayout(sites[2]).ledger_path)
    assert [e["round"] for e in ledger_c.entries if e["event"] == "segment_started"] == [1]
    report = audit_run(config.workdir, run="secagg", site_dirs=sites, draws=1)
    assert report["signature_verified"] is True
    assert all(0.0 <= s["auc"] <= 1.0 for s in report["sites"].values())
