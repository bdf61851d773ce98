"""A fine-tuning round and evaluation at a site: same DP ledger path, whitelisted downstream metrics."""

import math

import pytest
import torch

from client_site.downstream import DOWNSTREAM_METRICS, ClinicalMedMPT
from client_site.layout import SiteLayout
import client_site.downstream.heads as heads_module
from client_site.site_runtime import RoundRequest, SiteRefusal, SiteRuntime
from client_site.training import TrainConfig
from federation.config import FederationConfig
from federation.presets import get_preset
from federation.server_app import initial_arrays
from privacy.ledger import PrivacyLedger

pytestmark = pytest.mark.usefixtures("single_thread")

TINY = get_preset("tiny")


def _request(train):
    return RoundRequest(run_id="finetune", round=1, model=TINY.model,
                        input_shape=tuple(TINY.preprocess.shape), train=train, task="finetune")


def test_finetune_round_is_ledgered_and_evaluated(make_site):
    # Prepare
    site = make_site(epsilon=50.0)
    runtime = SiteRuntime(site)
    state = initial_arrays(FederationConfig(model_preset="tiny", task="finetune")).to_torch_state_dict()
    train = TrainConfig(local_steps=2, expected_batch_size=3, noise_multiplier=1.2)
    # Execute
    new_state, train_metrics = runtime.train_round(state, _request(train))
    metrics = runtime.evaluate(new_state, _request(train))
    # Assert: DP exactly as in pretraining, one ledger segment with the planned (sigma, q, steps)
    started, completed = PrivacyLedger(SiteLayout(site).ledger_path).entries
    n_train = len(runtime.train_keys)
    assert (started["noise_multiplier"], started["sample_rate"], started["steps"]) == (1.2, 3 / n_train, 2)
    assert completed["event"] == "segment_completed"
    assert list(new_state) == list(ClinicalMedMPT(TINY.model).state_dict()) == list(state)
    assert any(not torch.equal(state[k], new_state[k]) for k in state)
    assert not any(name.endswith("_loss") for name in train_metrics)  # no un-noised statistic leaves
    assert train_metrics["epsilon"] > 0
    assert metrics["num-examples"] == len(runtime.held_out_keys)
    assert set(DOWNSTREAM_METRICS) <= set(metrics) and "probe_auc_macro" not in metrics
    assert all(math.isnan(v) or math.isfinite(v) for v in metrics.values())


def test_each_stage_spends_only_its_share_of_the_budget(make_site):
    # Prepare: budget 10 with 25% for SSL; one round at sigma 2.0, q = 1, 2 steps costs about
    # 3.2 (more than 2.5, less than 7.5)
    site = make_site(epsilon=10.0, ssl_share=0.25)
    runtime = SiteRuntime(site)
    train = TrainConfig(local_steps=2, expected_batch_size=1000, noise_multiplier=2.0)
    ssl = RoundRequest(run_id="pretrain", round=1, model=TINY.model,
                       input_shape=tuple(TINY.preprocess.shape), train=train, task="pretrain")
    pretrained = initial_arrays(FederationConfig(model_preset="tiny")).to_torch_state_dict()
    state = initial_arrays(FederationConfig(model_preset="tiny", task="finetune")).to_torch_state_dict()
    # Execute / Assert: the SSL round is over its share, the same round of fine-tuning fits
    with pytest.raises(SiteRefusal, match="ssl stage's epsilon .* share 2.500"):
        runtime.train_round(pretrained, ssl)
    runtime.train_round(state, _request(train))
    ledger = PrivacyLedger(SiteLayout(site).ledger_path)
    assert list(ledger.stage_epsilons(delta=1e-5)) == ["fine-tuning"]
    assert 2.5 < ledger.epsilon(delta=1e-5) < 7.5


def test_without_a_split_each_stage_may_spend_the_whole_budget(make_site):
    site = make_site(epsilon=10.0)
    train = TrainConfig(local_steps=2, expected_batch_size=1000, noise_multiplier=2.0)
    ssl = RoundRequest(run_id="pretrain", round=1, model=TINY.model,
                       input_shape=tuple(TINY.preprocess.shape), train=train, task="pretrain")
    SiteRuntime(site).train_round(initial_arrays(FederationConfig(model_preset="tiny")).to_torch_state_dict(), ssl)
    assert list(PrivacyLedger(SiteLayout(site).ledger_path).stage_epsilons(delta=1e-5)) == ["ssl"]


def test_frozen_backbone_fine_tuning_encodes_each_patient_once_and_trains_only_the_heads(make_site, monkeypatch):
    # Prepare: full-batch DP-GD with SGD (the benchmark's recipe), public statistics in the state
    site = make_site(epsilon=50.0)
    runtime = SiteRuntime(site)
    state = initial_arrays(FederationConfig(model_preset="tiny", task="finetune")).to_torch_state_dict()
    state["clinical_heads.standardiser.mean"] = torch.full_like(state["clinical_heads.standardiser.mean"], 0.3)
    train = TrainConfig(local_steps=4, expected_batch_size=1000, noise_multiplier=1.0, optimizer="sgd", lr=1.0)
    encoded = []  # volumes whose image features were computed (densitometry: both training paths)
    original = heads_module.densitometry_features
    monkeypatch.setattr(heads_module, "densitometry_features", lambda volume: encoded.append(len(volume)) or original(volume))
    # Execute
    new_state, metrics = runtime.train_round(state, _request(train))
    # Assert: one encoding per training patient for 4 steps; only the heads' weights moved
    assert sum(encoded) == len(runtime.train_keys)
    assert metrics["sample_rate"] == 1.0 and metrics["steps"] == 4
    moved = {k for k in state if not torch.equal(state[k], new_state[k])}
    assert moved == {"clinical_heads.diagnosis.linear.weight", "clinical_heads.diagnosis.linear.bias",
                     "clinical_heads.medication.linear.weight", "clinical_heads.medication.linear.bias"}
