"""Signed checkpoints: verified on load; tampered, truncated or unsigned ones are refused."""

import json
import stat

import numpy as np
import pytest
import torch
from flwr.app import ConfigRecord
from flwr.serverapp.strategy import FedAdam

from aggregator.checkpoints import (
    CheckpointError,
    checkpoint_path,
    latest_good_checkpoint,
    load_signed_checkpoint,
    save_signed_checkpoint,
)
from aggregator.results_store import ResultsStore
from aggregator.signing import generate_signing_key, load_private_key
from aggregator.site_recorder import SiteRecordingStrategy
from aggregator.strategies import import_strategy_state
from aggregator_helpers import FakeGrid, as_record, global_model, honest_update, reply_to


@pytest.fixture
def key(tmp_path):
    generate_signing_key(tmp_path / "keys" / "agg.pem")
    return load_private_key(tmp_path / "keys" / "agg.pem")


def _write_rounds(directory, key, rounds=(1, 2)):
    for rnd in rounds:
        save_signed_checkpoint(directory, rnd, {"model": {"w": torch.full((3,), float(rnd))}},
                               run_id="run", key=key)


def test_private_key_is_0600_and_round_trip_verifies(tmp_path, key):
    assert stat.S_IMODE((tmp_path / "keys" / "agg.pem").stat().st_mode) == 0o600
    _write_rounds(tmp_path / "ckpt", key)

    state = load_signed_checkpoint(checkpoint_path(tmp_path / "ckpt", 2), key.public_key())

    assert state["round"] == 2 and torch.equal(state["model"]["w"], torch.full((3,), 2.0))


def test_tampered_checkpoint_is_refused_and_the_previous_one_used(tmp_path, key):
    _write_rounds(tmp_path / "ckpt", key)
    path = checkpoint_path(tmp_path / "ckpt", 2)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))

    with pytest.raises(CheckpointError, match="truncated or was modified"):
        load_signed_checkpoint(path, key.public_key())
    found = latest_good_checkpoint(tmp_path / "ckpt", key.public_key())

    assert found.state["round"] == 1 and len(found.refused) == 1


def test_truncated_unsigned_or_foreign_checkpoints_are_refused(tmp_path, key):
    _write_rounds(tmp_path / "ckpt", key, rounds=(1, 2, 3))
    path3 = checkpoint_path(tmp_path / "ckpt", 3)
    path3.write_bytes(path3.read_bytes()[:100])                          # truncated
    checkpoint_path(tmp_path / "ckpt", 2).with_suffix(".pt.sig").unlink()  # unsigned
    generate_signing_key(tmp_path / "other.pem")
    other = load_private_key(tmp_path / "other.pem")

    found = latest_good_checkpoint(tmp_path / "ckpt", key.public_key())
    with pytest.raises(CheckpointError, match="signed by key"):
        load_signed_checkpoint(checkpoint_path(tmp_path / "ckpt", 1), other.public_key())

    assert found.state["round"] == 1
    assert "no signature file" in found.refused[1] and "truncated" in found.refused[0]


def test_forged_signature_file_is_refused(tmp_path, key):
    _write_rounds(tmp_path / "ckpt", key, rounds=(1,))
    sig = checkpoint_path(tmp_path / "ckpt", 1).with_suffix(".pt.sig")
    record = json.loads(sig.read_text())
    record["round"] = 7
    sig.write_text(json.dumps(record))

    with pytest.raises(CheckpointError, match="tampered"):
        load_signed_checkpoint(checkpoint_path(tmp_path / "ckpt", 1), key.public_key())


def _fedadam_round(strategy, rnd, reference, nodes, seed):
    messages = list(strategy.configure_train(rnd, as_record(reference), ConfigRecord({}), FakeGrid(nodes)))
    replies = [reply_to(m, honest_update(reference, 10 * seed + i), site=f"s{i}")
               for i, m in enumerate(messages)]
    arrays, _ = strategy.aggregate_train(rnd, replies)
    return {k: v.numpy() for k, v in arrays.items()}


def test_fedadam_moments_survive_a_checkpoint_and_resume_bitwise(tmp_path, key):
    # Prepare: an uninterrupted FedAdam run of 2 rounds
    def wrapper(name, offset=0):
        return SiteRecordingStrategy(FedAdam(eta=0.1, min_train_nodes=2, min_available_nodes=2),
                                     store=ResultsStore(tmp_path / f"{name}.sqlite"), run_id="run",
                                     checkpoint_dir=tmp_path / name, signing_key=key, round_offset=offset)
    straight = wrapper("straight")
    after1 = _fedadam_round(straight, 1, global_model(), [1, 2], seed=1)
    after2 = _fedadam_round(straight, 2, after1, [1, 2], seed=2)

    # Execute: a second run stops after round 1, a fresh strategy resumes from its checkpoint
    first = wrapper("interrupted")
    _fedadam_round(first, 1, global_model(), [1, 2], seed=1)
    found = latest_good_checkpoint(tmp_path / "interrupted", key.public_key())
    resumed = wrapper("interrupted", offset=found.state["round"])
    import_strategy_state(resumed.strategy, found.state["strategy_state"])
    model = {k: v.numpy() for k, v in found.state["model"].items()}
    final = _fedadam_round(resumed, 1, model, [1, 2], seed=2)  # Flower's round 1 is the run's round 2

    # Assert: same weights, bit for bit, and the global model kept its float32 dtype
    assert set(found.state["strategy_state"]) == {"m_t", "v_t"}
    for k in after2:
        assert final[k].dtype == np.float32
        np.testing.assert_array_equal(final[k], after2[k])
    assert checkpoint_path(tmp_path / "interrupted", 2).exists()
