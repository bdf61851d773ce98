"""Membership-inference attacks on per-patient losses, scored by ROC AUC.

Two attacks, both black-box in the loss of the released model:

* **loss attack** (Yeom et al., "Privacy risk in machine learning: analyzing the connection
  to overfitting", CSF 2018): a patient whose loss is lower is more likely a member,
  score = ``-loss``;
* **calibrated attack** (difficulty calibration, Watson et al., "On the importance of
  difficulty calibration in membership inference attacks", ICLR 2022; in spirit the offline,
  single-reference form of the likelihood-ratio attack of Carlini et al., "Membership
  inference attacks from first principles", IEEE S&P 2022): score =
  ``log(loss_ref) - log(loss)``, how much more (relatively) the released model fits this
  patient than a reference model that never saw them. It removes the part of the loss that
  comes from how hard a patient is (e.g. a noisy scan), which the plain loss attack mistakes
  for non-membership. The ratio, not the difference of Watson et al., because our reference
  is the untrained initial model, whose losses are on another scale: training that shrinks
  every patient's loss by the same factor then scores every patient alike, instead of
  ranking them by how hard they were for the initial model.

AUC 0.5 = the attacker does no better than a coin; 1.0 = members perfectly separated.
Under (epsilon, delta)-DP no attack can exceed TPR <= e^epsilon * FPR + delta at any
threshold (Kairouz et al. 2015), so a low epsilon caps the AUC.

This module is pure numpy/scikit-learn and imports nothing else from the project.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import roc_auc_score


def _vector(values: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite numbers, got {array[~np.isfinite(array)][:3]}")
    return array


def loss_scores(losses: ArrayLike) -> np.ndarray:
    """Membership scores of the loss attack: ``-loss`` (higher = more likely a member)."""
    return -_vector(losses, "losses")


def calibrated_scores(losses: ArrayLike, reference_losses: ArrayLike) -> np.ndarray:
    """Difficulty-calibrated scores ``log(reference_loss / loss)`` (higher = more likely a member).

    Parameters
    ----------
    losses : array_like
        Per-patient loss under the released model, shape (N,).
    reference_losses : array_like
        Per-patient loss under a reference model that was not trained on these patients
        (e.g. the run's public initial model), same shape and same inputs (masks).

    Raises
    ------
    ValueError
        On different shapes, negative or non-finite losses.
    """
    target, reference = _vector(losses, "losses"), _vector(reference_losses, "reference_losses")
    if target.shape != reference.shape:
        raise ValueError(f"losses {target.shape} and reference_losses {reference.shape} differ")
    if np.any(target < 0) or np.any(reference < 0):
        raise ValueError("losses must be >= 0 for the calibrated (log-ratio) attack")
    tiny = np.finfo(np.float64).tiny  # a loss of exactly 0 is the strongest membership signal
    return np.log(np.maximum(reference, tiny)) - np.log(np.maximum(target, tiny))


def membership_auc(member_scores: ArrayLike, non_member_scores: ArrayLike) -> float:
    """ROC AUC of separating members from non-members by score (higher = member).

    Equals the probability that a random member scores above a random non-member (ties count
    one half), i.e. the Mann-Whitney U statistic divided by ``n_members * n_non_members``.
    """
    members = _vector(member_scores, "member_scores")
    non_members = _vector(non_member_scores, "non_member_scores")
    if members.size == 0 or non_members.size == 0:
        raise ValueError(
            f"need at least one member and one non-member, got {members.size} and {non_members.size}"
        )
    labels = np.concatenate([np.ones(members.size), np.zeros(non_members.size)])
    return float(roc_auc_score(labels, np.concatenate([members, non_members])))


def auc_null_std(n_members: int, n_non_members: int) -> float:
    """Standard deviation of the AUC of a useless attack (true AUC 0.5), no ties.

    ``sqrt((n1 + n0 + 1) / (12 n1 n0))`` (Mann-Whitney U under the null). With 30 members
    and 10 non-members it is 0.10: an observed AUC of 0.6 is then within noise.
    """
    if n_members < 1 or n_non_members < 1:
        raise ValueError(f"need n_members, n_non_members >= 1, got {n_members}, {n_non_members}")
    return math.sqrt((n_members + n_non_members + 1) / (12.0 * n_members * n_non_members))


@dataclass(frozen=True)
class MembershipResult:
    """Aggregate outcome of the attacks at one site: the only numbers that leave it.

    Attributes
    ----------
    auc : float
        AUC of the loss attack.
    auc_calibrated : float
        AUC of the difficulty-calibrated attack.
    auc_untrained : float
        AUC of the loss attack on the reference model, which saw no patient: what the split
        alone gives away (members and held-out patients differing in how hard they are). A
        value far from 0.5 means the groups are not alike, and the other AUCs should be read
        against it rather than against 0.5.
    members, non_members : int
        Patients in each group.
    auc_null_std : float
        Standard deviation of the AUC of a useless attack at these group sizes.
    """

    auc: float
    auc_calibrated: float
    auc_untrained: float
    members: int
    non_members: int
    auc_null_std: float

    @classmethod
    def from_losses(
        cls, *, member_losses: ArrayLike, non_member_losses: ArrayLike,
        member_reference: ArrayLike, non_member_reference: ArrayLike,
    ) -> MembershipResult:
        """Run both attacks on per-patient losses of the two groups."""
        members = _vector(member_losses, "member_losses")
        non_members = _vector(non_member_losses, "non_member_losses")
        return cls(
            auc=membership_auc(loss_scores(members), loss_scores(non_members)),
            auc_calibrated=membership_auc(
                calibrated_scores(members, member_reference),
                calibrated_scores(non_members, non_member_reference),
            ),
            auc_untrained=membership_auc(loss_scores(member_reference), loss_scores(non_member_reference)),
            members=int(members.size),
            non_members=int(non_members.size),
            auc_null_std=auc_null_std(members.size, non_members.size),
        )
