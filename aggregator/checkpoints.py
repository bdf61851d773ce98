"""Global-model checkpoints written atomically after every round."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def save_checkpoint(directory: Path, round: int, state: dict[str, Any]) -> Path:
    """Write ``round_<k>.pt`` atomically (temp file, fsync, rename) and return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"round_{round:04d}.pt"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save({"round": round, **state}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint of the highest round in ``directory``, if any."""
    found = sorted(Path(directory).glob("round_*.pt"))
    return found[-1] if found else None
