"""The round request on the wire: its keys and the matched encode/decode pair.

The aggregator encodes what a site must do in a round (:func:`encode_round_request`, sent as
the message's ``config`` ConfigRecord, :class:`infra.record_keys.RecordKey`); Flower's
strategies add ``server-round`` (and FedProx ``proximal-mu``); the site decodes it
(:func:`decode_round_request`) into a :class:`~client_site.site_runtime.RoundRequest`. Every
value is type-checked on decoding: a request that names a key with the wrong type is refused
with the key and what was received.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import TypeVar

from client_site.site_runtime import RoundRequest
from client_site.tasks import PRETRAIN, check_task
from client_site.training import TrainConfig
from federation.presets import get_preset

Scalar = int | float | str | bool
T = TypeVar("T", str, int, float, bool)


class RequestKey(StrEnum):
    """Keys of the round request (the ``config`` record of a train/evaluate message)."""

    RUN_NAME = "run-name"
    SERVER_ROUND = "server-round"  # added by Flower's strategy
    LOCAL_STEPS = "local-steps"
    EXPECTED_BATCH_SIZE = "expected-batch-size"
    LR = "lr"
    NOISE_MULTIPLIER = "noise-multiplier"
    MAX_GRAD_NORM = "max-grad-norm"
    OPTIMIZER = "optimizer"
    DP = "dp"
    MODEL_PRESET = "model-preset"
    SEED = "seed"
    TASK = "task"
    PROXIMAL_MU = "proximal-mu"  # added by Flower's FedProx only
    UPDATE_NORM_BOUND = "update-norm-bound"


@dataclass(frozen=True)
class RoundSettings:
    """What the aggregator asks of every site in every round of a run."""

    run_name: str
    local_steps: int
    expected_batch_size: int
    lr: float
    noise_multiplier: float
    max_grad_norm: float
    dp: bool
    model_preset: str
    seed: int
    update_norm_bound: float
    task: str = PRETRAIN
    optimizer: str = "adamw"


class RequestError(ValueError):
    """A round request lacks a key or holds a value of the wrong type."""


def encode_round_request(settings: RoundSettings) -> dict[str, Scalar]:
    """The ``config`` record of a round's messages (kebab-case keys of :class:`RequestKey`)."""
    return {RequestKey[name.upper()].value: value for name, value in asdict(settings).items()}


def decode_round_request(config: Mapping[str, object]) -> RoundRequest:
    """Parse a received ``config`` record into the site's :class:`RoundRequest`.

    Raises
    ------
    RequestError
        If a key is missing or holds a value of the wrong type.
    """
    preset = get_preset(_get(config, RequestKey.MODEL_PRESET, str))
    return RoundRequest(
        run_id=_get(config, RequestKey.RUN_NAME, str),
        round=_get(config, RequestKey.SERVER_ROUND, int),
        model=preset.model,
        input_shape=tuple(preset.preprocess.shape),
        task=check_task(_get(config, RequestKey.TASK, str, PRETRAIN)),
        train=TrainConfig(
            local_steps=_get(config, RequestKey.LOCAL_STEPS, int),
            expected_batch_size=_get(config, RequestKey.EXPECTED_BATCH_SIZE, int),
            lr=_get(config, RequestKey.LR, float),
            noise_multiplier=_get(config, RequestKey.NOISE_MULTIPLIER, float),
            max_grad_norm=_get(config, RequestKey.MAX_GRAD_NORM, float),
            optimizer=_get(config, RequestKey.OPTIMIZER, str, "adamw"),
            dp=_get(config, RequestKey.DP, bool),
            seed=_get(config, RequestKey.SEED, int),
            # Only FedProx sends it (Flower's FedProx.configure_train); FedAvg/FedAdam: none.
            proximal_mu=_get(config, RequestKey.PROXIMAL_MU, float, 0.0),
        ),
    )


def decode_update_norm_bound(config: Mapping[str, object]) -> float:
    """The L2 bound a site clips its update to (:mod:`federation.update_bound`).

    Raises
    ------
    RequestError
        If the key is missing, not a number, or not positive.
    """
    bound = _get(config, RequestKey.UPDATE_NORM_BOUND, float)
    if not bound > 0:
        raise RequestError(f"round request key {RequestKey.UPDATE_NORM_BOUND.value!r} must be > 0, got {bound}")
    return bound


def _get(config: Mapping[str, object], key: RequestKey, kind: type[T], default: T | None = None) -> T:
    value = config.get(key.value, default)
    if value is None:
        raise RequestError(f"the round request has no {key.value!r}")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # a whole-number float may arrive as an int
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RequestError(f"round request key {key.value!r} must be {kind.__name__}, got {value!r}")
    return value
