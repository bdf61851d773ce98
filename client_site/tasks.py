"""What a federated run trains: SSL pretraining of MedMPT or downstream fine-tuning.

The task travels by name in the train/evaluate config (run-config key ``task``); the aggregator
and every site build the same model class from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import torch
from torch import nn

from client_site.model import MedMPT, ModelConfig

PRETRAIN: Final = "pretrain"
FINETUNE: Final = "finetune"
TASKS: Final[tuple[str, ...]] = (PRETRAIN, FINETUNE)


def check_task(task: str) -> str:
    """Return ``task`` if it is one of :data:`TASKS`, else raise ``ValueError``."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    return task


def build_model(
    task: str, cfg: ModelConfig, *, init_state: Mapping[str, torch.Tensor] | None = None,
) -> nn.Module:
    """The model of ``task``: ``MedMPT`` (pretrain) or ``ClinicalMedMPT`` (finetune).

    Parameters
    ----------
    task : str
        One of :data:`TASKS`.
    cfg : ModelConfig
        Backbone sizes (the run's preset).
    init_state : mapping, optional
        Weights to start from, loaded strictly: a ``MedMPT`` state dict (for ``finetune`` it
        initialises the backbone and the heads keep their fresh initialisation) or, for
        ``finetune``, a whole ``ClinicalMedMPT`` state dict. (default: None, fresh weights)

    Initialisation draws from torch's global generator; seed it first for a reproducible model.
    """
    if check_task(task) == PRETRAIN:
        model = MedMPT(cfg)
        if init_state is not None:
            model.load_state_dict(init_state, strict=True)
        return model
    from client_site.downstream.model import ClinicalMedMPT  # fine-tuning only

    clinical = ClinicalMedMPT(cfg)
    if init_state is not None:
        clinical.load_weights(init_state)
    return clinical
