"""A site's budget is its own: nothing the aggregator sends can raise it or switch DP off."""

import dataclasses
import time
from collections import Counter

import pytest
import torch
from flwr.app import ConfigRecord, Context, Message, Metadata, RecordDict
from flwr.app.message_type import MessageType

from aggregator.signing import generate_signing_key, load_private_key
from client_site.datasets import load_cache_index
from client_site.layout import SiteLayout
from client_site.site_config import SITE_CONFIG, load_site_config
from client_site.failures import SiteRefusal
from client_site.site_runtime import RoundRequest, SiteRuntime
from client_site.training import TrainConfig
from federation import client_app
from federation.config import FederationConfig
from federation.server_app import initial_arrays
from federation.site_binding import SIMULATION_AGGREGATOR_KEY_ENV
from infra.round_integrity import sign_round
from privacy.accountant import epsilon_of
from privacy.ledger import PrivacyLedger

# 8 patients -> 6 in the train split; q = 4/6, sigma 1.0, 2 steps costs about 5.9 per round,
# so a budget of 7 allows one round and refuses the second.
BUDGET = 7.0
CONFIG = FederationConfig(run_name="r1", model_preset="tiny", local_steps=2, expected_batch_size=4,
                          noise_multiplier=1.0)
# What a hostile or misconfigured aggregator might add to a train request.
RAISE_ATTEMPT = {
    "epsilon-budget": 1000.0, "epsilon_budget": 1000.0, "epsilon": 1000.0, "budget": 1000.0,
    "delta": 0.5, "target-epsilon": 1000.0, "allow-non-dp": True, "allow_non_dp": True,
    "accountant": "prv",
}


@pytest.fixture(autouse=True)
def _pinned_aggregator_key(tmp_path, monkeypatch):
    # Sites refuse unverifiable models: sign the requests with a key the site pins.
    generate_signing_key(tmp_path / "aggregator.pem")
    monkeypatch.setenv(SIMULATION_AGGREGATOR_KEY_ENV, str(tmp_path / "aggregator.pub"))
    monkeypatch.setitem(_SIGNER, "key", load_private_key(tmp_path / "aggregator.pem"))


_SIGNER = {}


def _train_message(config, server_round, extra):
    metadata = Metadata(run_id=1, message_id=f"m{server_round}", src_node_id=1, dst_node_id=7,
                        reply_to_message_id="", group_id=str(server_round), created_at=time.time(),
                        ttl=3600.0, message_type=MessageType.TRAIN)
    arrays = initial_arrays(config)
    request = ConfigRecord({**config.site_request(), "server-round": server_round, **extra})
    content = RecordDict({
        "arrays": arrays,
        "config": request,
        "integrity": sign_round(arrays, request, run_id=config.run_name, round=server_round, phase="train",
                                key=_SIGNER["key"]),
    })
    return Message(content, metadata=metadata)


def _context(site_dir):
    return Context(run_id=1, node_id=7, node_config={"site-dir": str(site_dir)}, state=RecordDict(),
                   run_config={})


def test_aggregator_config_cannot_raise_the_budget(make_site):
    # Prepare
    site = make_site(epsilon=BUDGET)
    toml_before = (site / SITE_CONFIG).read_bytes()
    context = _context(site)
    # Execute: round 1 fits the site's budget, whatever the request claims
    reply = client_app.train(_train_message(CONFIG, 1, RAISE_ATTEMPT), context)
    torch.set_num_threads(1)
    spent = PrivacyLedger(SiteLayout(site).ledger_path).epsilon(delta=1e-5)
    # Assert: the site priced it at its own delta and reported its own budget
    metrics = reply.content["metrics"]
    assert metrics["epsilon_budget"] == BUDGET and metrics["delta"] == 1e-5
    assert metrics["epsilon"] == pytest.approx(spent) and 0 < spent <= BUDGET
    assert spent == pytest.approx(epsilon_of([(1.0, 4 / 6, 2)], delta=1e-5))
    # Execute / Assert: round 2 would cross 7.0 and is refused at the site's own budget
    with pytest.raises(SiteRefusal, match=r"budget 7\.0 \(delta=1e-05\)"):
        client_app.train(_train_message(CONFIG, 2, RAISE_ATTEMPT), context)
    ledger = PrivacyLedger(SiteLayout(site).ledger_path)
    assert ledger.epsilon(delta=1e-5) == spent  # nothing was spent by the refused round
    assert [e["event"] for e in ledger.entries] == ["segment_started", "segment_completed"]
    assert (site / SITE_CONFIG).read_bytes() == toml_before
    assert load_site_config(site).budget.epsilon == BUDGET


def test_refusal_survives_a_restart_of_the_site(make_site):
    # Prepare: a site that spent round 1, then "restarts" (a fresh ClientApp process per message)
    site = make_site(epsilon=BUDGET)
    client_app.train(_train_message(CONFIG, 1, {}), _context(site))
    # Execute / Assert: a new context, a new run name, a larger budget claimed -- still refused
    other_run = dataclasses.replace(CONFIG, run_name="r2")
    with pytest.raises(SiteRefusal, match="budget"):
        client_app.train(_train_message(other_run, 1, RAISE_ATTEMPT), _context(site))


def test_aggregator_cannot_switch_dp_off(make_site):
    site = make_site(epsilon=BUDGET)
    no_dp = dataclasses.replace(CONFIG, dp=False)
    with pytest.raises(SiteRefusal, match="without DP"):
        client_app.train(_train_message(no_dp, 1, RAISE_ATTEMPT), _context(site))
    assert not SiteLayout(site).ledger_path.exists() or not PrivacyLedger(SiteLayout(site).ledger_path).entries


def test_round_request_carries_no_budget():
    # The only way a train request reaches the site's logic: nothing in it names a budget.
    names = {f.name for f in dataclasses.fields(RoundRequest)} | {f.name for f in dataclasses.fields(TrainConfig)}
    assert not {n for n in names if any(w in n for w in ("budget", "epsilon", "delta", "allow", "accountant"))}


def test_ingested_patient_with_two_studies_is_one_sample(make_site):
    # Prepare: the synthetic hospital has 8 patients and 9 studies (one follow-up scan)
    site = make_site(epsilon=BUDGET)
    studies = load_cache_index(SiteLayout(site).cache_dir)
    per_patient = Counter(s.patient_key for s in studies)
    # Execute
    runtime = SiteRuntime(site)
    client_app.train(_train_message(CONFIG, 1, {}), _context(site))
    # Assert: patients, not studies, are counted and sampled
    assert (len(studies), len(per_patient), max(per_patient.values())) == (9, 8, 2)
    assert len(runtime.train_keys) + len(runtime.held_out_keys) == 8
    (entry, *_) = PrivacyLedger(SiteLayout(site).ledger_path).entries
    assert entry["sample_rate"] == pytest.approx(4 / len(runtime.train_keys))
