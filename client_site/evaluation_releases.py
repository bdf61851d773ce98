"""The site's record of the evaluations it released: at most one per global model and per round.

Evaluation runs on held-out patients and spends no privacy budget, so the aggregator must not
be able to query it at will (many models, or one model many times, each answer a little more
about those patients). Before evaluating, the site claims the request in a JSON-lines file
beside its ledger, under a file lock; a model it already evaluated (same weights, any run) or
a (run, round) it already answered is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import torch

from client_site.failures import Reason, SiteRefusal
from infra.atomic_files import PRIVATE_MODE
from infra.file_lock import locked


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the state dict's names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def claim_evaluation(path: Path, *, run_id: str, round: int, digest: str) -> None:
    """Record that this model is evaluated for (run, round), or refuse a repeat.

    Raises
    ------
    SiteRefusal
        ``already-evaluated``: the same weights, or the same run and round, were evaluated before.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):
        earlier = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] \
            if path.exists() else []
        for entry in earlier:
            if entry["digest"] == digest or (entry["run_id"], entry["round"]) == (run_id, round):
                raise SiteRefusal(Reason.ALREADY_EVALUATED, (
                    f"model {digest[:12]}... (run {run_id}, round {round}) not evaluated again: "
                    f"{path} shows run {entry['run_id']} round {entry['round']} at {entry['time']}"))
        line = json.dumps({"run_id": run_id, "round": round, "digest": digest,
                           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, sort_keys=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_MODE)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
