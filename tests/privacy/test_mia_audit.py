"""`fedmpt audit mia`: per-site AUC of the latest global model, with the epsilon each site spent."""

import json
import re

import pytest
import torch
from typer.testing import CliRunner

from aggregator.checkpoints import checkpoint_path, save_checkpoint, save_signed_checkpoint
from aggregator.results_store import ResultsStore
from aggregator.signing import load_or_create_signing_key
from client_site.datasets import PatientDataset, load_cache_index, split_patients
from client_site.layout import SiteLayout
from client_site.model import MedMPT
from client_site.site_runtime import RoundRequest, SiteRuntime
from client_site.tasks import build_model
from client_site.tokenizer import ReportTokenizer
from client_site.training import TrainConfig, train_locally
from cli.main import app
from federation.config import FederationConfig
from federation.presets import get_preset
from federation.server_app import RESULTS_STORE, initial_arrays
from privacy.ledger import PrivacyLedger

TINY = get_preset("tiny")


def _publish(workdir, config, state, round=1):
    """What the aggregator leaves behind after a run: store row and global checkpoint."""
    store = ResultsStore(workdir / "aggregator" / RESULTS_STORE)
    store.start_run(config.run_name, strategy="fedavg", num_rounds=round, config=config.as_run_config())
    store.finish_run(config.run_name, status="completed")
    store.close()
    save_checkpoint(workdir / "aggregator" / "checkpoints" / config.run_name, round,
                    {"run_id": config.run_name, "model": state})


def _audit(workdir, *sites):
    args = ["audit", "mia", "--workdir", str(workdir), "--threads", "1", "--draws", "2"]
    for site in sites:
        args += ["--site", str(site)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads((workdir / "aggregator" / "reports" / "mia.json").read_text()), result.output


def test_overfit_model_without_dp_is_caught_with_auc_one(memorable_site, tmp_path, monkeypatch):
    # Prepare: 12 patients of random scans and reports (9 members, 3 held out); a model
    # trained without DP until it memorises its members, published as a run's last round.
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    site = memorable_site("memo", 12)
    config = FederationConfig(workdir=str(tmp_path), run_name="overfit", model_preset="tiny", dp=False)
    model = MedMPT(TINY.model)
    model.load_state_dict(initial_arrays(config).to_torch_state_dict())
    members, held_out = split_patients({s.patient_key for s in load_cache_index(site / "cache")})
    dataset = PatientDataset(site / "cache", members, ReportTokenizer(), max_len=TINY.model.text_max_len, seed=0)
    train_locally(model, dataset, TrainConfig(local_steps=60, expected_batch_size=len(members), lr=3e-3, dp=False))
    _publish(tmp_path, config, model.state_dict())
    # Execute
    report, output = _audit(tmp_path, site)
    # Assert
    assert report["run"] == "overfit" and report["round"] == 1 and report["dp"] is False
    memo = report["sites"]["memo"]
    assert (memo["members"], memo["non_members"]) == (len(members), len(held_out)) == (9, 3)
    assert memo["auc"] == 1.0 and memo["auc_calibrated"] == 1.0
    assert memo["epsilon"] is None  # no DP, no guarantee
    assert "memo" in output and "1.000" in output
    assert set(memo) == {"auc", "auc_calibrated", "auc_untrained", "auc_null_std", "members",
                         "non_members", "dp",
                         "epsilon", "epsilon_cumulative", "delta"}  # aggregates only leave the site


def test_dp_run_reports_the_epsilon_from_the_site_ledger(make_site, tmp_path, monkeypatch):
    # Prepare: one DP round at a generated site, then a second run's round the site also spends
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    site = make_site(epsilon=50.0)
    config = FederationConfig(workdir=str(tmp_path / "w"), run_name="dp-run", model_preset="tiny")
    runtime = SiteRuntime(site)
    train = TrainConfig(local_steps=2, expected_batch_size=4, noise_multiplier=1.0)
    state = initial_arrays(config).to_torch_state_dict()
    request = RoundRequest(run_id="dp-run", round=1, model=TINY.model,
                           input_shape=tuple(TINY.preprocess.shape), train=train)
    new_state, metrics = runtime.train_round(state, request)
    runtime.train_round(state, RoundRequest(run_id="other-run", round=1, model=TINY.model,
                                            input_shape=tuple(TINY.preprocess.shape), train=train))
    _publish(tmp_path / "w", config, new_state)
    # Execute
    report, _ = _audit(tmp_path / "w", site)
    # Assert
    audit = report["sites"]["hospital-a"]
    assert 0.0 <= audit["auc"] <= 1.0 and 0.0 <= audit["auc_calibrated"] <= 1.0
    assert audit["epsilon"] == pytest.approx(metrics["epsilon"])  # this run's rounds only
    ledger = PrivacyLedger(SiteLayout(site).ledger_path)
    assert audit["epsilon_cumulative"] == pytest.approx(ledger.epsilon(delta=1e-5))
    assert audit["epsilon_cumulative"] > audit["epsilon"] > 0
    assert audit["members"] + audit["non_members"] == 8 and audit["non_members"] == 2


def test_audit_without_run_or_checkpoint_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = ResultsStore(tmp_path / "aggregator" / RESULTS_STORE)
    store.close()
    result = CliRunner().invoke(app, ["audit", "mia", "--workdir", str(tmp_path)])
    assert result.exit_code != 0 and "no completed run" in re.sub(r"[\s│╭╮╰╯─]+", " ", result.output)


def test_audit_verifies_the_aggregator_signature(memorable_site, tmp_path, monkeypatch):
    # Prepare: a signed checkpoint (the aggregator key lives in the workdir, as in the demo)
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    site = memorable_site("memo", 8)
    config = FederationConfig(workdir=str(tmp_path), run_name="signed", model_preset="tiny")
    key = load_or_create_signing_key(config.signing_key_path)
    store = ResultsStore(tmp_path / "aggregator" / RESULTS_STORE)
    store.start_run("signed", strategy="fedavg", num_rounds=1, config=config.as_run_config())
    store.finish_run("signed", status="completed")
    store.close()
    path = save_signed_checkpoint(config.checkpoint_dir, 1, {"model": initial_arrays(config).to_torch_state_dict()},
                                  run_id="signed", key=key)
    # Execute / Assert: verified and audited
    report, _ = _audit(tmp_path, site)
    assert report["signature_verified"] is True and 0.0 <= report["sites"]["memo"]["auc"] <= 1.0
    # Execute / Assert: an altered model is refused, not audited
    blob = bytearray(path.read_bytes())
    blob[-10] ^= 0xFF
    path.write_bytes(bytes(blob))
    result = CliRunner().invoke(app, ["audit", "mia", "--workdir", str(tmp_path), "--site", str(site)])
    message = re.sub(r"[\s│╭╮╰╯─]+", " ", result.output)  # typer wraps errors in a box
    assert result.exit_code != 0 and "does not match the signed" in message


def test_fine_tuned_release_is_audited_through_its_backbone_with_the_whole_chain_epsilon(
        make_site, tmp_path, monkeypatch):
    # Prepare: a pretraining run, then a fine-tuning run started from its checkpoint (as
    # `make demo` leaves them); the site's ledger has a DP segment under each run.
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    site = make_site(epsilon=50.0)
    workdir = tmp_path / "w"
    pretrain = FederationConfig(workdir=str(workdir), run_name="pre", model_preset="tiny")
    runtime = SiteRuntime(site)
    train = TrainConfig(local_steps=2, expected_batch_size=4, noise_multiplier=1.0)
    state = initial_arrays(pretrain).to_torch_state_dict()
    for run_id in ("pre", "pre-finetune"):  # the second segment stands for the fine-tuning round
        state, metrics = runtime.train_round(state, RoundRequest(
            run_id=run_id, round=1, model=TINY.model, input_shape=tuple(TINY.preprocess.shape), train=train))
    _publish(workdir, pretrain, state)
    finetune = FederationConfig(workdir=str(workdir), run_name="pre-finetune", model_preset="tiny",
                                task="finetune", init_checkpoint=str(checkpoint_path(pretrain.checkpoint_dir, 1)))
    clinical = build_model("finetune", TINY.model, init_state=state)
    _publish(workdir, finetune, clinical.state_dict())

    # Execute: the default run is the newest completed one, the fine-tuned model
    report, _ = _audit(workdir, site)

    # Assert
    assert report["run"] == "pre-finetune" and report["task"] == "finetune"
    assert report["runs_in_model"] == ["pre", "pre-finetune"]
    audit = report["sites"]["hospital-a"]
    assert 0.0 <= audit["auc"] <= 1.0
    assert audit["epsilon"] == pytest.approx(metrics["epsilon"])  # both runs' segments
    assert audit["epsilon"] == pytest.approx(audit["epsilon_cumulative"])
