"""The site keeps the verified fine-tuned global model of an evaluate request in SITE_DIR/models/."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from flwr.app import Context, Message, RecordDict

from aggregator.signing import generate_signing_key, load_private_key
from client_site.downstream.model import ClinicalMedMPT
from client_site.model_store import latest_model_path, read_model_file
from client_site.failures import Reason
from client_site.tasks import FINETUNE, PRETRAIN
from federation.client_app import app
from federation.presets import get_preset
from federation.received_models import keep_global_model
from round_messages import round_message

TINY = get_preset("tiny").model


def _evaluate_message(state: dict[str, torch.Tensor], task: str, key_path: Path) -> Message:
    return round_message(state, key=load_private_key(key_path), phase="evaluate", run="run-7", round=4,
                         preset="tiny", task=task)


@pytest.mark.parametrize("pinned", [True, False])
def test_a_finetune_model_is_kept_with_its_provenance(tmp_path: Path, pinned: bool) -> None:
    # Prepare
    generate_signing_key(tmp_path / "aggregator.pem")
    torch.manual_seed(0)
    state = ClinicalMedMPT(TINY).state_dict()
    message = _evaluate_message(state, FINETUNE, tmp_path / "aggregator.pem")
    node_config = {"site-dir": str(tmp_path / "site")}
    if pinned:
        node_config["aggregator-key"] = str(tmp_path / "aggregator.pub")
    context = Context(run_id=1, node_id=7, node_config=node_config, state=RecordDict(), run_config={})
    # Execute
    path = keep_global_model(message, context)
    stored = read_model_file(latest_model_path(tmp_path / "site", FINETUNE))
    # Assert
    assert path == latest_model_path(tmp_path / "site", FINETUNE)
    assert list(stored.state) == list(state) and all(torch.equal(stored.state[k], v) for k, v in state.items())
    assert stored.model_config == TINY and stored.preset == "tiny"
    assert (stored.meta["run_id"], stored.meta["round"], stored.meta["task"]) == ("run-7", 4, FINETUNE)
    assert stored.meta["verified"] is pinned
    assert stored.meta["digest"] == message.content["integrity"]["digest"]


def test_pretraining_models_are_not_kept(tmp_path: Path) -> None:
    generate_signing_key(tmp_path / "aggregator.pem")
    message = _evaluate_message({"w": torch.zeros(2)}, PRETRAIN, tmp_path / "aggregator.pem")
    context = Context(run_id=1, node_id=7, node_config={"site-dir": str(tmp_path / "site")}, state=RecordDict(),
                      run_config={})
    assert keep_global_model(message, context) is None
    assert not (tmp_path / "site").exists()


def test_model_files_of_other_origins_are_read(tmp_path: Path) -> None:
    # Prepare: a bare state dict and an aggregator round checkpoint
    state = {"w": torch.arange(3.0)}
    torch.save(state, tmp_path / "bare.pt")
    torch.save({"model": state, "run_id": "r", "round": 5, "config": {"model-preset": "tiny", "task": FINETUNE}},
               tmp_path / "round_0005.pt")
    torch.save({"not": "weights"}, tmp_path / "junk.pt")
    # Execute
    bare = read_model_file(tmp_path / "bare.pt")
    checkpoint = read_model_file(tmp_path / "round_0005.pt")
    # Assert
    assert torch.equal(bare.state["w"], state["w"]) and bare.preset is None and bare.model_config is None
    assert checkpoint.preset == "tiny" and checkpoint.meta == {"task": FINETUNE, "run_id": "r", "round": 5}
    with pytest.raises(ValueError, match="no state dict"):
        read_model_file(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError):
        read_model_file(tmp_path / "missing.pt")


@pytest.mark.parametrize("signer", ["aggregator", "mallory"])
def test_the_client_app_keeps_only_a_model_that_passed_verification(tmp_path: Path, signer: str) -> None:
    # Prepare: a site pinning the aggregator's key (its cache is missing, so evaluation itself fails)
    generate_signing_key(tmp_path / "aggregator.pem")
    generate_signing_key(tmp_path / "mallory.pem")
    message = _evaluate_message(ClinicalMedMPT(TINY).state_dict(), FINETUNE, tmp_path / f"{signer}.pem")
    context = Context(run_id=1, node_id=7, state=RecordDict(), run_config={}, node_config={
        "site-dir": str(tmp_path / "site"), "aggregator-key": str(tmp_path / "aggregator.pub")})
    # Execute
    reply = app(message, context)
    # Assert: both fail (no cache), but only the aggregator's model got past the signature check
    kept = latest_model_path(tmp_path / "site", FINETUNE).is_file()
    assert kept is (signer == "aggregator")
    assert reply.has_error() and (Reason.MODEL_NOT_VERIFIED.value in reply.error.reason) is (signer == "mallory")
