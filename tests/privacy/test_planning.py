"""Planning the noise of a stage that comes after a site already spent part of its budget."""

import pytest

from privacy.accountant import epsilon_of
from privacy.planning import noise_within_budget


def test_planned_noise_is_the_smallest_that_keeps_the_site_within_its_budget():
    # Prepare: three SSL rounds already spent, then 30 full-batch steps to plan
    spent = [(1.5, 8 / 45, 10)] * 3
    # Execute
    sigma = noise_within_budget(spent, budget_epsilon=10.0, delta=1e-5, sample_rate=1.0, steps=30)
    # Assert: within the budget at sigma, over it just below
    assert epsilon_of([*spent, (sigma, 1.0, 30)], delta=1e-5) <= 10.0
    assert epsilon_of([*spent, (sigma - 0.01, 1.0, 30)], delta=1e-5) > 10.0


def test_a_spent_budget_cannot_be_planned_for():
    with pytest.raises(ValueError, match="already spends the whole budget"):
        noise_within_budget([(0.5, 1.0, 100)], budget_epsilon=2.0, delta=1e-5, sample_rate=1.0, steps=1)
