"""Weights that initialise a run's global model (run-config key ``init-checkpoint``).

Fine-tuning starts from a pretraining run: the file is one of that run's round checkpoints
(:mod:`aggregator.checkpoints`, global weights under ``"model"``) or a plain ``torch.save``'d
state dict. A checkpoint with a signature file is verified against the aggregator key first; an
unsigned file is accepted with a warning (the consortium lead vouches for it).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from aggregator.checkpoints import SIGNATURE_SUFFIX, load_signed_checkpoint

logger = logging.getLogger(__name__)


def load_init_state(path: Path, *, public_key: Ed25519PublicKey) -> dict[str, torch.Tensor]:
    """The state dict stored in ``path`` (a round checkpoint's ``"model"``, or the whole file).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    aggregator.checkpoints.CheckpointError
        If ``path`` has a signature file and does not verify under ``public_key``.
    ValueError
        If the file holds no state dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"init-checkpoint {path} does not exist")
    if path.with_name(path.name + SIGNATURE_SUFFIX).exists():
        payload = load_signed_checkpoint(path, public_key)
    else:
        logger.warning("init-checkpoint %s has no signature file; loading it unverified", path)
        payload = torch.load(path, weights_only=True)
    state = payload.get("model", payload) if isinstance(payload, dict) else payload
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"{path} holds no state dict of tensors (expected a round checkpoint "
                         "with a 'model' entry, or a torch.save'd state_dict)")
    return state
