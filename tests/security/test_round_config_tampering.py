"""Threat: the Fleet proxy, or anyone who can write the SuperLink's database, changes the round
settings a site acts on (noise multiplier, seed, steps, learning rate, task, preset) after the
aggregator signed the global model.

Defence: the aggregator's signature covers the whole round request, not only run, round, phase
and model digest; the site's ClientApp mod refuses a request whose settings differ from the
signed ones, before any handler runs.
"""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, RecordDict

from aggregator.signing import generate_signing_key, load_private_key
from client_site.failures import Reason, SiteRefusal
from federation.client_app import app, train
from federation.round_guard import signed_round_mod
from round_messages import round_message


@pytest.mark.parametrize("key, value", [("noise-multiplier", 0.0), ("seed", 1234), ("local-steps", 500),
                                        ("lr", 10.0), ("task", "finetune"), ("dp", False)])
def test_a_tampered_round_setting_is_refused(tmp_path, key, value):
    # Prepare: a correctly signed request, then one setting changed in transit
    generate_signing_key(tmp_path / "aggregator.pem")
    message = round_message(ArrayRecord({"w": Array(np.zeros(3, np.float32))}),
                            key=load_private_key(tmp_path / "aggregator.pem"))
    config = dict(message.content["config"])
    assert config[key] != value
    message.content["config"] = ConfigRecord({**config, key: value})
    context = Context(run_id=1, node_id=7, state=RecordDict(), run_config={}, node_config={
        "site-dir": str(tmp_path / "site"), "aggregator-key": str(tmp_path / "aggregator.pub")})
    # Execute / Assert: refused before the site is touched; the aggregator sees a fixed reason
    with pytest.raises(SiteRefusal, match="does not match the signed one") as refused:
        signed_round_mod(message, context, train)
    reply = app(message, context)
    assert refused.value.reason == Reason.MODEL_NOT_VERIFIED
    assert reply.has_error() and Reason.MODEL_NOT_VERIFIED.value in reply.error.reason
    assert not (tmp_path / "site").exists()
