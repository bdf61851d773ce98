"""The round request's encode/decode pair: what the aggregator encodes is what the site decodes."""

import pytest

from federation.config import FederationConfig
from federation.protocol import RequestError, decode_round_request


def test_every_setting_survives_the_round_trip():
    # Prepare
    config = FederationConfig(run_name="r9", local_steps=7, expected_batch_size=5, lr=0.02,
                              noise_multiplier=0.8, max_grad_norm=0.5, dp=False, model_preset="tiny",
                              seed=11, task="finetune")
    # Execute
    request = decode_round_request({**config.site_request(), "server-round": 3, "proximal-mu": 0.1})
    # Assert
    train = request.train
    assert (request.run_id, request.round, request.task) == ("r9", 3, "finetune")
    assert (train.local_steps, train.expected_batch_size, train.lr, train.noise_multiplier) == (7, 5, 0.02, 0.8)
    assert (train.max_grad_norm, train.dp, train.seed, train.proximal_mu) == (0.5, False, 11, 0.1)


@pytest.mark.parametrize("key, value, message", [
    ("local-steps", "7", "'local-steps' must be int"),
    ("dp", 1, "'dp' must be bool"),
    ("server-round", None, "no 'server-round'"),
])
def test_a_malformed_request_names_the_key(key, value, message):
    request = {**FederationConfig(model_preset="tiny").site_request(), "server-round": 1}
    if value is None:
        del request[key]
    else:
        request[key] = value

    with pytest.raises(RequestError, match=message):
        decode_round_request(request)
