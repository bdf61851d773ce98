"""Append-only, hash-chained privacy ledger kept by each site.

Every DP training segment is written *before* its first noise draw, so a crash mid-round
still counts the round as spent, and a round trained again (a resumed or repeated run) is
charged again. Each line holds the SHA-256 of the previous line and a head record beside the
file anchors its length (:mod:`privacy.ledger_file`), so an edited, truncated or rolled-back
ledger is refused when opened; the budget check and the append are atomic across processes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.file_lock import locked
from privacy.accountant import PrivacyAccountant
from privacy.budget import PrivacyBudget
from privacy.errors import BudgetExceededError
from privacy.ledger_file import append_entry, read_entries

logger = logging.getLogger(__name__)

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
        with locked(self.path):
            self.entries: list[dict[str, Any]] = read_entries(self.path)

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

    def stage_history(self, stage: str) -> list[tuple[float, float, int]]:
        """``(sigma, q, steps)`` of the segments recorded for ``stage`` (``""``: no stage given)."""
        return [(e["noise_multiplier"], e["sample_rate"], e["steps"]) for e in self.entries
                if e["event"] == "segment_started" and e.get("stage", "") == stage]

    def stage_epsilons(self, *, delta: float) -> dict[str, float]:
        """Epsilon of each recorded stage's segments alone, at ``delta``, in first-use order.

        The stages compose: the cumulative :meth:`epsilon` is at most their sum.
        """
        stages = dict.fromkeys(e.get("stage", "") for e in self.entries if e["event"] == "segment_started")
        return {stage: PrivacyAccountant(mechanism=self.mechanism, history=self.stage_history(stage))
                .get_epsilon(delta=delta) for stage in stages}

    def reserve(
        self,
        *,
        run_id: str,
        round: int,
        noise_multiplier: float,
        sample_rate: float,
        steps: int,
        budget: PrivacyBudget,
        stage: str = "",
    ) -> Reservation:
        """Count a planned segment as spent, or raise if it would cross ``budget``.

        ``stage`` names what the segment trains (e.g. ``"ssl"``, ``"fine-tuning"``); it is
        recorded so the site can show which stage spent what (:meth:`stage_epsilons`).

        Call before the first noise draw; the entry is fsync-ed before this returns. The check
        and the append happen under the ledger's lock, against the entries on disk at that
        moment, so concurrent runs at one site cannot together pass the budget.
        """
        with locked(self.path):
            self.entries = read_entries(self.path)
            return self._reserve_locked(run_id=run_id, round=round, noise_multiplier=noise_multiplier,
                                        sample_rate=sample_rate, steps=steps, budget=budget, stage=stage)

    def _reserve_locked(self, *, run_id: str, round: int, noise_multiplier: float,
                        sample_rate: float, steps: int, budget: PrivacyBudget, stage: str) -> Reservation:
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
                "stage": stage,
            }
        )
        return Reservation(
            run_id, round, noise_multiplier, sample_rate, steps, epsilon_after, budget.delta
        )

    def complete(self, reservation: Reservation) -> None:
        """Mark a reserved segment as trained to the end (for the audit trail)."""
        with locked(self.path):
            self.entries = read_entries(self.path)
            self._append(
                {"event": "segment_completed", "run_id": reservation.run_id, "round": reservation.round}
            )

    def _append(self, body: dict[str, Any]) -> None:
        """Append ``body`` after the entries on disk (``self.entries`` read under the same lock)."""
        self.entries.append(append_entry(self.path, self.entries, body))
