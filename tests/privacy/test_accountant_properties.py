"""Hypothesis properties of the accountant: epsilon grows with steps, shrinks with noise."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.accountant import PrivacyAccountant, epsilon_of

sigmas = st.floats(min_value=0.5, max_value=8.0)
rates = st.floats(min_value=1e-3, max_value=1.0)
step_counts = st.integers(min_value=1, max_value=5_000)
deltas = st.sampled_from([1e-4, 1e-5, 1e-6])


@settings(max_examples=25, deadline=None)
@given(sigma=sigmas, q=rates, steps=step_counts, more=st.integers(1, 2_000), delta=deltas)
def test_epsilon_is_monotone_in_steps(sigma, q, steps, more, delta):
    fewer = epsilon_of([(sigma, q, steps)], delta=delta)
    more_eps = epsilon_of([(sigma, q, steps + more)], delta=delta)
    assert 0 < fewer <= more_eps


@settings(max_examples=25, deadline=None)
@given(sigma=sigmas, factor=st.floats(min_value=1.01, max_value=4.0), q=rates, steps=step_counts,
       delta=deltas)
def test_epsilon_decreases_with_noise(sigma, factor, q, steps, delta):
    assert epsilon_of([(sigma * factor, q, steps)], delta=delta) <= epsilon_of([(sigma, q, steps)], delta=delta)


@settings(max_examples=15, deadline=None)
@given(sigma=sigmas, q=rates, low=st.floats(1e-3, 0.5), steps=step_counts)
def test_epsilon_grows_with_sample_rate(sigma, q, low, steps):
    q_low = min(low, q)
    assert epsilon_of([(sigma, q_low, steps)], delta=1e-5) <= epsilon_of([(sigma, q, steps)], delta=1e-5)


@settings(max_examples=10, deadline=None)
@given(rounds=st.lists(st.tuples(sigmas, rates, st.integers(1, 500)), min_size=1, max_size=3))
def test_history_is_order_free_additive_and_round_trips(rounds):
    # RDP composes additively: a ledger's rounds in any order give the same epsilon, and every
    # round adds to it; the JSON state (what the ledger persists) reproduces it exactly.
    acc = PrivacyAccountant(history=list(rounds))
    eps = acc.get_epsilon(delta=1e-5)
    assert epsilon_of(list(reversed(rounds)), delta=1e-5) == pytest.approx(eps, rel=1e-9)
    assert epsilon_of(list(rounds[:-1]), delta=1e-5) <= eps
    restored = PrivacyAccountant.from_state_dict(json.loads(json.dumps(acc.state_dict())))
    assert restored.get_epsilon(delta=1e-5) == eps


@settings(max_examples=5, deadline=None)
@given(sigma=st.floats(0.8, 4.0), q=st.floats(0.01, 0.5), steps=st.integers(1, 300),
       more=st.integers(1, 300))
def test_prv_epsilon_is_monotone_in_steps(sigma, q, steps, more):
    # PRV is numerical (FFT over a discretised privacy-loss distribution): allow its error.
    fewer = epsilon_of([(sigma, q, steps)], delta=1e-5, mechanism="prv")
    more_eps = epsilon_of([(sigma, q, steps + more)], delta=1e-5, mechanism="prv")
    assert fewer <= more_eps + 1e-2
