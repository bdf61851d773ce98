"""Flower's run_config -> FederationConfig: flags are parsed strictly."""

import pytest

from federation.config import FederationConfig


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), (False, False), ("true", True), ("false", False), ("False", False),
    (1, True), (0, False),
])
def test_flags_accept_bools_true_false_strings_and_0_1(value, expected):
    # Execute
    config = FederationConfig.from_run_config({"run-name": "r", "dp": value, "resume": value})

    # Assert
    assert config.dp is expected and config.resume is expected


@pytest.mark.parametrize("value", ["yes", "", "0", 2, 0.5, None])
def test_anything_else_is_refused_naming_the_key(value):
    with pytest.raises(ValueError, match="'secure-aggregation' must be a bool"):
        FederationConfig.from_run_config({"run-name": "r", "secure-aggregation": value})


def test_round_trip_through_the_run_config_keeps_every_value():
    # Prepare
    config = FederationConfig(run_name="r", dp=False, resume=True, strategy="fedprox",
                              proximal_mu=0.1, local_steps=3)

    # Execute
    parsed = FederationConfig.from_run_config(config.as_run_config())

    # Assert
    assert parsed == config
