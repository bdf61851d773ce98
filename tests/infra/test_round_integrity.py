"""Round requests travel signed; a site accepts only what its pinned aggregator key signed."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from aggregator.signing import generate_signing_key, load_private_key
from infra.round_integrity import sign_round, verify_round
from infra.signatures import SignatureError

CONFIG = {"run-name": "run", "server-round": 3, "lr": 0.001, "seed": 0}


@pytest.fixture
def keys(tmp_path):
    for name in ("agg", "mallory"):
        generate_signing_key(tmp_path / f"{name}.pem")
    return load_private_key(tmp_path / "agg.pem"), load_private_key(tmp_path / "mallory.pem")


def _arrays(bump=0.0):
    return ArrayRecord({"head.weight": Array(np.full((2, 3), 0.5 + bump, np.float32))})


def _message(key, *, round=3, phase="train"):
    arrays, config = _arrays(), ConfigRecord({**CONFIG, "server-round": round})
    integrity = sign_round(arrays, config, run_id="run", round=round, phase=phase, key=key)
    return RecordDict({"arrays": arrays, "config": config, "integrity": integrity})


def test_signed_request_verifies(keys):
    agg, _ = keys
    signed = verify_round(_message(agg), phase="train", key=agg.public_key())

    assert (signed.run_id, signed.round, signed.phase) == ("run", 3, "train")
    assert len(signed.digest) == 64 and len(signed.config_digest) == 64


@pytest.mark.parametrize("change, message", [
    ("weights", "do not match the signed digest"),
    ("round", "replayed"),
    ("phase", "replayed"),
    ("signer", "pins aggregator key"),
    ("unsigned", "no aggregator signature"),
])
def test_modified_replayed_foreign_or_unsigned_models_are_refused(keys, change, message):
    agg, mallory = keys
    content = _message(mallory if change == "signer" else agg)
    if change == "weights":
        content["arrays"] = _arrays(bump=1e-3)
    if change == "unsigned":
        del content["integrity"]
    if change == "round":  # a model signed for round 3, sent as round 4
        content["config"] = ConfigRecord({**CONFIG, "server-round": 4})

    with pytest.raises(SignatureError, match=message):
        verify_round(content, phase="evaluate" if change == "phase" else "train", key=agg.public_key())
