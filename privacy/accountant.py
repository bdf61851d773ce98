"""Epsilon of a DP-SGD history with Opacus's accountants, as a small serializable object.

A history is a list of ``(noise_multiplier, sample_rate, steps)`` triples, the same form
Opacus's accountants keep (``accountant.history``). Keeping the history, not the epsilon,
lets any accountant re-derive epsilon and lets a planned round be priced before it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opacus.accountants import PRVAccountant, RDPAccountant

ACCOUNTANTS: dict[str, type[RDPAccountant] | type[PRVAccountant]] = {
    "prv": PRVAccountant,
    "rdp": RDPAccountant,
}

Step = tuple[float, float, int]


def _check_step(noise_multiplier: float, sample_rate: float, steps: int) -> Step:
    if noise_multiplier <= 0:
        raise ValueError(f"noise_multiplier must be > 0 under DP, got {noise_multiplier}")
    if not 0 < sample_rate <= 1:
        raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return (float(noise_multiplier), float(sample_rate), int(steps))


@dataclass
class PrivacyAccountant:
    """Cumulative DP-SGD history of one site, priced by an Opacus accountant.

    Parameters
    ----------
    mechanism : str
        ``"rdp"`` (Mironov 2017, Opacus's tighter conversion) or ``"prv"``
        (Gopi et al. 2021, numerical composition). (default: ``"rdp"``)
    history : list of (float, float, int)
        ``(noise_multiplier, sample_rate, steps)`` per training segment.
    """

    mechanism: str = "rdp"
    history: list[Step] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mechanism not in ACCOUNTANTS:
            raise ValueError(
                f"unknown accountant {self.mechanism!r}; expected one of {sorted(ACCOUNTANTS)}"
            )
        self.history = [_check_step(*step) for step in self.history]

    def step(self, *, noise_multiplier: float, sample_rate: float, steps: int) -> None:
        """Record ``steps`` DP-SGD steps at the given noise and Poisson sampling rate."""
        self.history.append(_check_step(noise_multiplier, sample_rate, steps))

    def get_epsilon(self, *, delta: float) -> float:
        """Epsilon spent so far at ``delta`` (0.0 for an empty history)."""
        return epsilon_of(self.history, delta=delta, mechanism=self.mechanism)

    def epsilon_if(
        self, *, noise_multiplier: float, sample_rate: float, steps: int, delta: float
    ) -> float:
        """Epsilon after a planned segment, without recording it."""
        planned = [*self.history, _check_step(noise_multiplier, sample_rate, steps)]
        return epsilon_of(planned, delta=delta, mechanism=self.mechanism)

    def state_dict(self) -> dict[str, object]:
        """JSON-safe state."""
        return {"mechanism": self.mechanism, "history": [list(s) for s in self.history]}

    @classmethod
    def from_state_dict(cls, state: dict[str, object]) -> PrivacyAccountant:
        """Rebuild from :meth:`state_dict` output, validating every entry."""
        try:
            history = [tuple(step) for step in state["history"]]  # type: ignore[attr-defined]
            return cls(mechanism=str(state["mechanism"]), history=history)  # type: ignore[arg-type]
        except (KeyError, TypeError) as e:
            raise ValueError(f"not an accountant state: {state!r}") from e


def epsilon_of(history: list[Step], *, delta: float, mechanism: str = "rdp") -> float:
    """Epsilon of a DP-SGD history at ``delta`` with Opacus's ``mechanism`` accountant."""
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    if not history:
        return 0.0
    accountant = ACCOUNTANTS[mechanism]()
    accountant.history = [_check_step(*step) for step in history]
    return float(accountant.get_epsilon(delta=delta))
