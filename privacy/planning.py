"""Plan a run's noise before it starts, from a target epsilon (Opacus's own solver)."""

from __future__ import annotations

from opacus.accountants.utils import get_noise_multiplier

from privacy.accountant import epsilon_of


def noise_for_target(
    *,
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    rounds: int,
    local_steps: int,
    mechanism: str = "rdp",
) -> tuple[float, float]:
    """Smallest noise multiplier whose ``rounds * local_steps`` steps stay within the target.

    Returns
    -------
    tuple of float
        ``(noise_multiplier, epsilon_reached)``, epsilon computed again from the history.
    """
    if rounds < 1 or local_steps < 1:
        raise ValueError(f"rounds and local_steps must be >= 1, got {rounds}, {local_steps}")
    steps = rounds * local_steps
    sigma = get_noise_multiplier(
        target_epsilon=target_epsilon,
        target_delta=delta,
        sample_rate=sample_rate,
        steps=steps,
        accountant=mechanism,
    )
    return sigma, epsilon_of([(sigma, sample_rate, steps)], delta=delta, mechanism=mechanism)


def noise_within_budget(
    history: list[tuple[float, float, int]],
    *,
    budget_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    mechanism: str = "rdp",
    tolerance: float = 1e-3,
) -> float:
    """Smallest noise multiplier (to ``tolerance``) whose ``steps`` more steps keep a site that
    already spent ``history`` within ``budget_epsilon`` (bisection on the accountant).

    Raises
    ------
    ValueError
        If ``history`` alone already reaches the budget.
    """
    if epsilon_of(history, delta=delta, mechanism=mechanism) >= budget_epsilon:
        raise ValueError(f"the history already spends the whole budget {budget_epsilon:g}")

    def fits(sigma: float) -> bool:
        spent = epsilon_of([*history, (sigma, sample_rate, steps)], delta=delta, mechanism=mechanism)
        return spent <= budget_epsilon

    low, high = 0.1, 1.0
    while not fits(high):
        low, high = high, high * 2
    while high - low > tolerance:
        middle = (low + high) / 2
        low, high = (low, middle) if fits(middle) else (middle, high)
    return high
