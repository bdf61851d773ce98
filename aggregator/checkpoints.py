"""Global-model checkpoints written atomically after every round, signed by the aggregator.

``round_<k>.pt`` holds the round's state (``torch.save`` of tensors and plain values only, so
it loads with ``weights_only=True``); ``round_<k>.pt.sig`` is a small JSON file with the
SHA-256 of those bytes and the aggregator's Ed25519 signature over
``(CHECKPOINT_PURPOSE, run, round, sha256)``. Both are written with temp file + fsync +
rename, the signature last: a crash in between leaves an unsigned checkpoint, which resume
refuses like a tampered one and falls back to the previous round.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from infra.atomic_files import write_bytes_atomic, write_json_atomic
from infra.signatures import CHECKPOINT_PURPOSE, SignatureError, fingerprint, sign, statement, verify

logger = logging.getLogger(__name__)

SIGNATURE_SUFFIX = ".sig"


class CheckpointError(RuntimeError):
    """A checkpoint is missing its signature, truncated, tampered with or unreadable."""


def checkpoint_path(directory: Path, round: int) -> Path:
    """Where the checkpoint of ``round`` lives in ``directory``."""
    return Path(directory) / f"round_{round:04d}.pt"


def save_checkpoint(directory: Path, round: int, state: dict[str, Any]) -> Path:
    """Write ``round_<k>.pt`` atomically (temp file, fsync, rename) and return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(directory, round)
    buffer = io.BytesIO()
    torch.save({"round": round, **state}, buffer)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def save_signed_checkpoint(
    directory: Path, round: int, state: dict[str, Any], *, run_id: str, key: Ed25519PrivateKey
) -> Path:
    """Write ``round_<k>.pt`` and its signature file; return the checkpoint's path."""
    path = save_checkpoint(directory, round, {"run_id": run_id, **state})
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    record = {
        "round": round, "run_id": run_id, "sha256": digest, "signer": fingerprint(key),
        "signature": sign(key, statement(CHECKPOINT_PURPOSE, (run_id, round, digest))),
    }
    write_json_atomic(path.with_name(path.name + SIGNATURE_SUFFIX), record)
    return path


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint of the highest round in ``directory``, if any (not verified)."""
    found = sorted(Path(directory).glob("round_*.pt"))
    return found[-1] if found else None


def load_signed_checkpoint(path: Path, key: Ed25519PublicKey) -> dict[str, Any]:
    """Verify ``path`` against its signature file, then load it.

    Raises
    ------
    CheckpointError
        With what is wrong: no signature file, another signer, a digest mismatch (truncated
        or modified), a bad signature, or a payload that does not load.
    """
    path = Path(path)
    sig_path = path.with_name(path.name + SIGNATURE_SUFFIX)
    if not sig_path.exists():
        raise CheckpointError(f"{path.name}: no signature file {sig_path.name}; refusing an "
                              "unsigned checkpoint (crash while writing, or not ours)")
    try:
        record = json.loads(sig_path.read_text(encoding="utf-8"))
        run_id, round, expected = str(record["run_id"]), int(record["round"]), str(record["sha256"])
        signature = str(record["signature"])
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{sig_path.name}: unreadable signature file ({e})") from e
    if record.get("signer") != fingerprint(key):
        raise CheckpointError(f"{path.name}: signed by key {record.get('signer')}, expected the "
                              f"aggregator key {fingerprint(key)}")
    blob = path.read_bytes()
    actual = hashlib.sha256(blob).hexdigest()
    if actual != expected:
        raise CheckpointError(
            f"{path.name}: SHA-256 {actual[:16]}... does not match the signed {expected[:16]}...; "
            f"the file is truncated or was modified ({len(blob)} bytes)"
        )
    try:
        verify(key, statement(CHECKPOINT_PURPOSE, (run_id, round, expected)), signature)
    except SignatureError as e:
        raise CheckpointError(f"{path.name}: {e}; the signature file was tampered with") from e
    try:
        state: dict[str, Any] = torch.load(io.BytesIO(blob), weights_only=True)
    except Exception as e:  # signed but unreadable: written by an incompatible version
        raise CheckpointError(f"{path.name}: signed but does not load: {e}") from e
    if state.get("round") != round or state.get("run_id") != run_id:
        raise CheckpointError(f"{path.name}: payload round/run differ from the signed ones")
    return state


@dataclass(frozen=True)
class GoodCheckpoint:
    """The newest checkpoint that verified, and the ones refused on the way."""

    path: Path
    state: dict[str, Any]
    refused: tuple[str, ...]


def latest_good_checkpoint(directory: Path, key: Ed25519PublicKey) -> GoodCheckpoint | None:
    """Newest checkpoint in ``directory`` that verifies; refused ones are logged and skipped."""
    refused: list[str] = []
    for path in sorted(Path(directory).glob("round_*.pt"), reverse=True):
        try:
            state = load_signed_checkpoint(path, key)
        except CheckpointError as e:
            logger.error("refusing checkpoint: %s", e)
            refused.append(str(e))
            continue
        return GoodCheckpoint(path, state, tuple(refused))
    return None
