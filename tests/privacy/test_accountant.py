"""The accountant must give exactly Opacus's epsilon and survive a JSON round-trip."""

import json

import pytest
from opacus.accountants import PRVAccountant, RDPAccountant

from privacy.accountant import PrivacyAccountant, epsilon_of

SETTINGS = [(1.0, 0.02, 250), (4.0, 0.01, 1000), (0.7, 0.1, 30)]


@pytest.mark.parametrize("mechanism,opacus_cls", [("rdp", RDPAccountant), ("prv", PRVAccountant)])
@pytest.mark.parametrize("sigma,q,steps", SETTINGS)
def test_epsilon_matches_opacus(mechanism, opacus_cls, sigma, q, steps):
    # Prepare: Opacus's own accountant stepped one step at a time
    reference = opacus_cls()
    for _ in range(steps):
        reference.step(noise_multiplier=sigma, sample_rate=q)
    # Execute
    ours = epsilon_of([(sigma, q, steps)], delta=1e-5, mechanism=mechanism)
    # Assert
    assert ours == pytest.approx(reference.get_epsilon(delta=1e-5), rel=1e-6)


def test_epsilon_grows_with_rounds_and_round_trips():
    acc = PrivacyAccountant()
    eps = []
    for _ in range(3):
        acc.step(noise_multiplier=1.0, sample_rate=0.05, steps=20)
        eps.append(acc.get_epsilon(delta=1e-5))
    assert eps[0] < eps[1] < eps[2]
    restored = PrivacyAccountant.from_state_dict(json.loads(json.dumps(acc.state_dict())))
    assert restored.get_epsilon(delta=1e-5) == eps[-1]


def test_epsilon_if_does_not_record():
    acc = PrivacyAccountant(history=[(1.0, 0.05, 20)])
    planned = acc.epsilon_if(noise_multiplier=1.0, sample_rate=0.05, steps=20, delta=1e-5)
    assert planned > acc.get_epsilon(delta=1e-5)
    assert acc.history == [(1.0, 0.05, 20)]


@pytest.mark.parametrize("bad", [(0.0, 0.1, 1), (1.0, 1.5, 1), (1.0, 0.1, 0)])
def test_invalid_steps_are_rejected(bad):
    with pytest.raises(ValueError):
        PrivacyAccountant(history=[bad])
