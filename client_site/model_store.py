"""The site's own copy of the latest global model it received: ``SITE_DIR/models/<task>/latest.pt``.

A site that evaluates a federated round keeps the global model of that round (after checking the
aggregator's signature, when it pins the aggregator's key) so that site-local tools, such as
``fedmpt report draft``, can run it without contacting the aggregator. The file is one
``torch.save`` of ``{"model": state_dict, "meta": {...}}`` holding tensors and plain values only,
so it loads with ``weights_only=True``; ``meta`` records where the weights came from:

``task``, ``preset``, ``model_config`` (the :class:`~client_site.model.ModelConfig` fields),
``run_id``, ``round``, ``digest`` (the aggregator-signed digest of the weights, or None),
``verified`` (whether that signature was checked against the pinned key) and ``saved_at``.

:func:`read_model_file` also reads an aggregator round checkpoint (``round_<k>.pt``, whose
``config`` names the preset) or a bare state dict.
"""

from __future__ import annotations

import io
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from infra.atomic_files import write_bytes_atomic
from client_site.model import ModelConfig

logger = logging.getLogger(__name__)

MODELS_DIR = "models"
LATEST = "latest.pt"

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class StoredModel:
    """Weights read back by :func:`read_model_file`.

    Attributes
    ----------
    state : dict[str, torch.Tensor]
        The state dict.
    model_config : ModelConfig | None
        The model's sizes when the file records them (files of this store do).
    preset : str | None
        The consortium preset the file names, if any.
    meta : dict[str, Any]
        Everything else the file says about the weights (see the module docstring).
    """

    state: StateDict
    model_config: ModelConfig | None
    preset: str | None
    meta: dict[str, Any]


def latest_model_path(site_dir: Path, task: str) -> Path:
    """Where the site keeps the latest global model of ``task``."""
    return Path(site_dir) / MODELS_DIR / task / LATEST


def save_received_model(
    site_dir: Path, state: StateDict, *, task: str, model_config: ModelConfig, preset: str, run_id: str,
    round: int, digest: str | None, verified: bool,
) -> Path:
    """Atomically replace the site's latest model of ``task`` with ``state``; return its path.

    Parameters
    ----------
    site_dir : Path
        The site directory.
    state : dict[str, torch.Tensor]
        The received global weights.
    task : str
        The run's task (``client_site.tasks.TASKS``).
    model_config : ModelConfig
        Sizes of the model the weights belong to.
    preset : str
        The run's model preset name.
    run_id : str
        The run that sent the weights.
    round : int
        The federated round the weights are the global model of.
    digest : str | None
        The aggregator-signed digest of the weights (None: the message carried no signature).
    verified : bool
        Whether the site checked that signature against the aggregator key it pins.
    """
    meta = {
        "task": task, "preset": preset, "model_config": asdict(model_config), "run_id": run_id,
        "round": int(round), "digest": digest, "verified": bool(verified),
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    buffer = io.BytesIO()
    torch.save({"model": {k: v.detach().cpu() for k, v in state.items()}, "meta": meta}, buffer)
    path = latest_model_path(site_dir, task)
    write_bytes_atomic(path, buffer.getvalue())
    logger.info("kept the %s global model of run %s round %d in %s%s", task, run_id, round, path,
                "" if verified else " (signature not checked: no aggregator key pinned)")
    return path


def read_model_file(path: Path) -> StoredModel:
    """Read weights written by :func:`save_received_model`, a round checkpoint or a state dict.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file holds no state dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    payload = torch.load(path, weights_only=True, map_location="cpu")
    state = payload.get("model", payload) if isinstance(payload, dict) else payload
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"{path} holds no state dict of tensors (expected a file of SITE_DIR/{MODELS_DIR}/, "
                         "a round checkpoint with a 'model' entry, or a torch.save'd state_dict)")
    meta = dict(payload["meta"]) if isinstance(payload.get("meta"), dict) else {}
    checkpoint_config = payload["config"] if isinstance(payload.get("config"), dict) else {}
    sizes = meta.pop("model_config", None)
    preset = meta.pop("preset", None) or checkpoint_config.get("model-preset")
    if not meta and checkpoint_config:
        meta = {"task": checkpoint_config.get("task"), "run_id": payload.get("run_id"), "round": payload.get("round")}
    return StoredModel(state=state, model_config=ModelConfig(**sizes) if isinstance(sizes, dict) else None,
                       preset=str(preset) if preset else None, meta=meta)
