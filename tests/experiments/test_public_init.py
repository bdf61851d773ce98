"""The signed starting point of a fine-tuning run: pretrained backbone + public standardisation."""

import json

import torch
from typer.testing import CliRunner

from aggregator.checkpoints import save_signed_checkpoint
from aggregator.signing import load_or_create_signing_key
from cli.main import app
from client_site.model import MedMPT
from experiments.mia_audit import lineage
from experiments.public_init import public_phantoms, public_standardiser
from federation.config import FederationConfig
from federation.init_weights import load_init_state
from federation.presets import get_preset


def test_finetune_init_carries_the_backbone_the_public_statistics_and_the_lineage(tmp_path):
    # Prepare: round 2 of a signed pretraining run
    config = FederationConfig(workdir=str(tmp_path), run_name="pre")
    key = load_or_create_signing_key(config.signing_key_path)
    torch.manual_seed(3)
    pretrained = MedMPT(get_preset("tiny").model)
    checkpoint = save_signed_checkpoint(config.checkpoint_dir, 2, {"model": pretrained.state_dict()},
                                        run_id="pre", key=key)
    # Execute: the documented command
    result = CliRunner().invoke(app, ["experiment", "finetune-init", str(checkpoint), "--workdir", str(tmp_path),
                                      "--preset", "tiny", "--seed", "0", "--public-patients", "3"])
    assert result.exit_code == 0, result.output
    path = config.aggregator_dir / "init" / "pre" / checkpoint.name
    assert f"wrote {path}" in result.output
    state = load_init_state(path, public_key=key.public_key())  # verifies the signature
    # Assert: backbone as pretrained, statistics of the public phantoms with that backbone
    assert all(torch.equal(state[f"backbone.{k}"], v) for k, v in pretrained.state_dict().items())
    expected = public_standardiser(public_phantoms(tmp_path, seed=0, preset="tiny", patients=3), pretrained)
    assert torch.equal(state["clinical_heads.standardiser.mean"], expected.mean)
    assert torch.equal(state["clinical_heads.standardiser.scale"], expected.scale)
    assert not torch.all(expected.mean == 0)
    # the fine-tuned model's lineage still reaches the pretraining run (the membership audit's chain)
    runs = [{"run_id": "pre", "config_json": "{}"},
            {"run_id": "ft", "config_json": json.dumps({"init-checkpoint": str(path)})}]
    assert lineage("ft", runs) == ["pre", "ft"]
