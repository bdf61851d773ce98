"""Membership-inference audits of released models: attack scores and their AUC."""

from privacy.audit.membership import (
    MembershipResult,
    auc_null_std,
    calibrated_scores,
    loss_scores,
    membership_auc,
)

__all__ = [
    "MembershipResult",
    "auc_null_std",
    "calibrated_scores",
    "loss_scores",
    "membership_auc",
]
