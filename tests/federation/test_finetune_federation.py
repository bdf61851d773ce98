"""Federated fine-tuning: task and init-checkpoint in the run config, a real round over two sites."""

import pytest
import torch
from flwr.app import ConfigRecord

from aggregator.checkpoints import CheckpointError, latest_good_checkpoint, save_signed_checkpoint
from aggregator.results_store import ResultsStore
from aggregator.signing import load_or_create_signing_key
from client_site.downstream import BACKBONE_PREFIX, ClinicalMedMPT
from client_site.model import MedMPT
from federation.protocol import decode_round_request
from federation.config import FederationConfig
from federation.presets import get_preset
from federation.secagg_client import state_keys
from federation.server_app import initial_arrays, run_rounds
from federation_helpers import InProcessGrid

TINY = get_preset("tiny").model


pytestmark = pytest.mark.usefixtures("task_identity")


def _config(workdir, **kw):
    return FederationConfig(workdir=str(workdir), model_preset="tiny", local_steps=2,
                            expected_batch_size=4, noise_multiplier=1.0, min_sites=2, **kw)


def _pretrained(seed=7):
    torch.manual_seed(seed)
    return MedMPT(TINY).state_dict()


def _signed_pretraining_checkpoint(config, state):
    key = load_or_create_signing_key(config.signing_key_path)
    return save_signed_checkpoint(config.aggregator_dir / "checkpoints" / "pretrain", 3, {"model": state},
                                  run_id="pretrain", key=key)


def test_task_travels_to_the_sites_and_defaults_to_pretraining(tmp_path):
    # Prepare
    config = FederationConfig.from_run_config({"task": "finetune", "init-checkpoint": "x.pt"})
    # Execute
    request = decode_round_request(ConfigRecord({**config.site_request(), "server-round": 1}))
    legacy = {k: v for k, v in config.site_request().items() if k != "task"}
    # Assert
    assert config.site_request()["task"] == "finetune" and "init-checkpoint" not in config.site_request()
    assert request.task == "finetune" and decode_round_request(ConfigRecord({**legacy, "server-round": 1})).task == "pretrain"
    assert state_keys(request) == list(ClinicalMedMPT(request.model).state_dict())
    with pytest.raises(ValueError, match="task"):
        FederationConfig(task="distill")


def test_init_checkpoint_initialises_the_backbone(tmp_path):
    # Prepare: a plain state dict and a signed round checkpoint of a pretraining run
    pretrained = _pretrained()
    plain = tmp_path / "pretrained.pt"
    torch.save(pretrained, plain)
    config = _config(tmp_path, task="finetune", init_checkpoint=str(plain))
    signed = _signed_pretraining_checkpoint(config, pretrained)
    # Execute
    from_plain = initial_arrays(config).to_torch_state_dict()
    from_signed = initial_arrays(_config(tmp_path, task="finetune", init_checkpoint=str(signed)))
    fresh = initial_arrays(_config(tmp_path, task="finetune")).to_torch_state_dict()
    # Assert
    for key, value in pretrained.items():
        assert torch.equal(from_plain[BACKBONE_PREFIX + key], value)
    assert all(torch.equal(v, from_signed.to_torch_state_dict()[k]) for k, v in from_plain.items())
    heads = [k for k in fresh if k.startswith("clinical_heads.")]
    assert heads and all(torch.equal(from_plain[k], fresh[k]) for k in heads)  # fresh heads
    signed.write_bytes(signed.read_bytes()[:-8])  # tampered
    with pytest.raises(CheckpointError):
        initial_arrays(_config(tmp_path, task="finetune", init_checkpoint=str(signed)))


def test_a_federated_finetune_round_reports_downstream_metrics(tiny_sites, tmp_path):
    # Prepare: fine-tune from a signed pretraining checkpoint over two sites
    config = _config(tmp_path, run_name="finetune", num_rounds=1, task="finetune")
    signed = _signed_pretraining_checkpoint(config, _pretrained())
    config = _config(tmp_path, run_name="finetune", num_rounds=1, task="finetune", init_checkpoint=str(signed))
    grid = InProcessGrid(tiny_sites[:2], aggregator_key=config.signing_key_path.with_suffix(".pub"))
    # Execute
    run_rounds(grid, config)
    # Assert
    store = ResultsStore(config.aggregator_dir / "results.sqlite", read_only=True)
    assert {p["status"] for p in store.participation("finetune")} == {"ok"}
    evaluated = {(r["site"], r["metric"]) for r in store.site_metrics("finetune") if r["phase"] == "evaluate"}
    trained = {r["metric"] for r in store.site_metrics("finetune") if r["phase"] == "train"}
    store.close()
    sites = {site for site, _ in evaluated}
    assert len(sites) == 2
    assert all((s, m) in evaluated for s in sites for m in ("diag_auc_macro", "med_f1", "report_bleu4"))
    assert "epsilon" in trained and not any(m.endswith("_loss") for m in trained)  # no un-noised loss leaves
    key = load_or_create_signing_key(config.signing_key_path).public_key()
    model = latest_good_checkpoint(config.checkpoint_dir, key).state["model"]
    assert list(model) == list(ClinicalMedMPT(TINY).state_dict())
