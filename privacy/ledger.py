"""Append-only, hash-chained privacy ledger kept by each site.

Every DP training segment is written *before* its first noise draw, so a crash mid-round
still counts the round as spent. Each line is a JSON object holding the SHA-256 of the
previous line, so an edited or deleted entry is detected when the ledger is opened.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privacy.accountant import PrivacyAccountant
from privacy.budget import PrivacyBudget
from privacy.errors import BudgetExceededError, LedgerCorruptedError

logger = logging.getLogger(__name__)

GENESIS = "0" * 64


def _digest(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Reservation:
    """A DP segment the ledger has counted as spent."""

    run_id: str
    round: int
    noise_multiplier: float
    sample_rate: float
    steps: int
    epsilon_after: float
    delta: float


class PrivacyLedger:
    """The site's persistent record of every DP segment it trained.

    Parameters
    ----------
    path : Path
        JSON-lines file; created on first write.
    mechanism : str
        Accountant used to price the history, ``"rdp"`` or ``"prv"``. (default: ``"rdp"``)
    """

    def __init__(self, path: Path, *, mechanism: str = "rdp") -> None:
        self.path = Path(path)
        self.mechanism = mechanism
        self.entries: list[dict[str, Any]] = self._load()

    def _load(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            # A crash while appending: the entry never became durable, so no training
            # followed it. Keep the fragment for the auditor and cut it from the ledger.
            cut = raw.rfind(b"\n") + 1
            torn = self.path.with_name(f"{self.path.name}.torn-{int(time.time())}")
            torn.write_bytes(raw[cut:])
            with open(self.path, "r+b") as handle:
                handle.truncate(cut)
                os.fsync(handle.fileno())
            logger.warning("ledger %s had an incomplete last line; moved it to %s", self.path, torn)
            raw = raw[:cut]
        entries: list[dict[str, Any]] = []
        previous = GENESIS
        for number, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                raise LedgerCorruptedError(f"{self.path}:{number} is not valid JSON") from e
            if entry.get("prev_hash") != previous or entry.get("hash") != _digest(entry):
                raise LedgerCorruptedError(
                    f"{self.path}:{number} breaks the hash chain: the ledger was edited. "
                    "Restore it from backup; do not train until it verifies."
                )
            previous = entry["hash"]
            entries.append(entry)
        return entries

    @property
    def accountant(self) -> PrivacyAccountant:
        """Accountant over every segment recorded so far."""
        history = [
            (e["noise_multiplier"], e["sample_rate"], e["steps"])
            for e in self.entries
            if e["event"] == "segment_started"
        ]
        return PrivacyAccountant(mechanism=self.mechanism, history=history)

    def epsilon(self, *, delta: float) -> float:
        """Cumulative epsilon spent at ``delta``."""
        return self.accountant.get_epsilon(delta=delta)

    def reserve(
        self,
        *,
        run_id: str,
        round: int,
        noise_multiplier: float,
        sample_rate: float,
        steps: int,
        budget: PrivacyBudget,
    ) -> Reservation:
        """Count a planned segment as spent, or raise if it would cross ``budget``.

        Call before the first noise draw; the entry is fsync-ed before this returns.
        """
        epsilon_after = self.accountant.epsilon_if(
            noise_multiplier=noise_multiplier,
            sample_rate=sample_rate,
            steps=steps,
            delta=budget.delta,
        )
        if epsilon_after > budget.epsilon:
            raise BudgetExceededError(
                f"round {round} of run {run_id} would raise the site's epsilon to "
                f"{epsilon_after:.3f} > budget {budget.epsilon} (delta={budget.delta}); "
                "refused before training. Only the site can change its budget (site.toml)."
            )
        self._append(
            {
                "event": "segment_started",
                "run_id": run_id,
                "round": round,
                "noise_multiplier": float(noise_multiplier),
                "sample_rate": float(sample_rate),
                "steps": int(steps),
                "epsilon_after": epsilon_after,
                "delta": budget.delta,
                "epsilon_budget": budget.epsilon,
                "mechanism": self.mechanism,
            }
        )
        return Reservation(
            run_id, round, noise_multiplier, sample_rate, steps, epsilon_after, budget.delta
        )

    def complete(self, reservation: Reservation) -> None:
        """Mark a reserved segment as trained to the end (for the audit trail)."""
        self._append(
            {"event": "segment_completed", "run_id": reservation.run_id, "round": reservation.round}
        )

    def _append(self, body: dict[str, Any]) -> None:
        entry = {
            "seq": len(self.entries),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **body,
            "prev_hash": self.entries[-1]["hash"] if self.entries else GENESIS,
        }
        entry["hash"] = _digest(entry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.entries.append(entry)
