"""Global models travel signed; a site accepts only what its pinned aggregator key signed."""

import numpy as np
import pytest
from flwr.app import ConfigRecord, RecordDict

from aggregator.model_integrity import INTEGRITY_RECORD, sign_global_model, verify_global_model
from aggregator.signing import SignatureError, generate_signing_key, load_private_key
from aggregator_helpers import as_record, global_model


@pytest.fixture
def keys(tmp_path):
    for name in ("agg", "mallory"):
        generate_signing_key(tmp_path / f"{name}.pem")
    return load_private_key(tmp_path / "agg.pem"), load_private_key(tmp_path / "mallory.pem")


def _message(arrays, key, *, round=3, phase="train"):
    integrity = sign_global_model(arrays, run_id="run", round=round, phase=phase, key=key)
    return RecordDict({"arrays": arrays, "config": ConfigRecord({}), INTEGRITY_RECORD: integrity})


def test_signed_model_verifies(keys):
    agg, _ = keys
    content = _message(as_record(global_model()), agg)

    digest = verify_global_model(content, run_id="run", round=3, phase="train", key=agg.public_key())

    assert len(digest) == 64


@pytest.mark.parametrize("change, message", [
    ("weights", "do not match the signed digest"),
    ("round", "replayed"),
    ("signer", "pins aggregator key"),
    ("unsigned", "no aggregator signature"),
])
def test_modified_replayed_foreign_or_unsigned_models_are_refused(keys, change, message):
    agg, mallory = keys
    weights = global_model()
    content = _message(as_record(weights), mallory if change == "signer" else agg)
    if change == "weights":
        weights["head.weight"] = weights["head.weight"] + np.float32(1e-3)
        content["arrays"] = as_record(weights)
    if change == "unsigned":
        del content[INTEGRITY_RECORD]
    round = 4 if change == "round" else 3

    with pytest.raises(SignatureError, match=message):
        verify_global_model(content, run_id="run", round=round, phase="train", key=agg.public_key())
