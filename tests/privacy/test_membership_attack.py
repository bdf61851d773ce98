"""The attack maths: AUC is the Mann-Whitney probability, in [0, 1], 1.0 on perfect separation."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.audit import (
    MembershipResult,
    auc_null_std,
    calibrated_scores,
    loss_scores,
    membership_auc,
)

scores = st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=15)


def _mann_whitney(members, non_members):
    wins = sum(1.0 if m > n else 0.5 if m == n else 0.0 for m, n in itertools.product(members, non_members))
    return wins / (len(members) * len(non_members))


def test_lower_member_loss_gives_auc_one():
    # Prepare: every member fits better than every non-member
    member_losses, non_member_losses = [0.1, 0.2, 0.3], [0.5, 0.9]
    # Execute
    auc = membership_auc(loss_scores(member_losses), loss_scores(non_member_losses))
    # Assert
    assert auc == 1.0
    assert membership_auc(loss_scores(non_member_losses), loss_scores(member_losses)) == 0.0
    assert membership_auc([1.0, 1.0], [1.0]) == 0.5


@settings(max_examples=80, deadline=None)
@given(members=scores, non_members=scores)
def test_auc_is_the_mann_whitney_probability(members, non_members):
    auc = membership_auc(members, non_members)
    assert 0.0 <= auc <= 1.0
    assert auc == pytest.approx(_mann_whitney(members, non_members), abs=1e-12)


def test_calibration_removes_per_patient_difficulty():
    # Prepare: members are the hard patients (high loss under any model) but the released
    # model fits them 20 % better than the reference does; non-members it does not.
    member_ref, non_member_ref = np.array([5.0, 6.0, 7.0]), np.array([1.0, 2.0])
    member_loss, non_member_loss = 0.8 * member_ref, non_member_ref.copy()
    # Execute
    result = MembershipResult.from_losses(member_losses=member_loss, non_member_losses=non_member_loss,
                                          member_reference=member_ref, non_member_reference=non_member_ref)
    # Assert: the plain loss attack is fooled, the calibrated one is not
    assert result.auc == 0.0 and result.auc_calibrated == 1.0
    assert result.auc_untrained == 0.0  # the split itself separates hard from easy patients
    assert (result.members, result.non_members) == (3, 2)
    assert result.auc_null_std == pytest.approx(math.sqrt(6 / 72))


def test_calibration_ignores_a_uniform_improvement():
    # Training that shrinks every patient's loss by the same factor reveals nobody: the
    # calibrated scores tie, whatever the patients' difficulty under the reference.
    reference = np.array([1.0, 3.0, 9.0, 2.0])
    scores = calibrated_scores(0.25 * reference, reference)
    assert np.allclose(scores, np.log(4.0), rtol=0, atol=1e-12)


def test_invalid_inputs_are_refused():
    with pytest.raises(ValueError, match="at least one member"):
        membership_auc([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        membership_auc([float("nan")], [1.0])
    with pytest.raises(ValueError, match="differ"):
        calibrated_scores([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match=">= 0"):
        calibrated_scores([-1.0], [1.0])
    with pytest.raises(ValueError):
        auc_null_std(0, 3)
    assert auc_null_std(30, 10) == pytest.approx(0.1067, abs=1e-4)
