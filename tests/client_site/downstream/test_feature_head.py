"""The DP linear head on fixed features: it learns a separable signal under DP, and noise drowns it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from client_site.downstream.feature_head import FeatureObjective, LinearFindingHead, feature_dataset
from client_site.training import TrainConfig, train_locally
from privacy.randomness import seeded_randomness

DIMS, PATIENTS = 256, 200


def _separable(seed: int, n: int = PATIENTS) -> tuple[np.ndarray, np.ndarray]:
    """Two findings; a positive patient is shifted by +4 standard deviations along the
    finding's own feature (the other features are noise)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=(n, 2)).astype(np.float32)
    features = rng.normal(size=(n, DIMS)).astype(np.float32)
    features[:, :2] += 4.0 * labels
    return features, labels


def _held_out_auc(noise_multiplier: float) -> float:
    features, labels = _separable(0)
    head = LinearFindingHead(DIMS, 2)
    cfg = TrainConfig(local_steps=30, expected_batch_size=PATIENTS, lr=1.0, optimizer="sgd",
                      noise_multiplier=noise_multiplier, max_grad_norm=1.0, dp=True)
    result = train_locally(head, feature_dataset(features, labels), cfg, FeatureObjective(),
                           randomness=seeded_randomness(3, run_id="test", round=1))
    assert result.accountant_history == [(noise_multiplier, 1.0, 30)]
    test_x, test_y = _separable(1)
    with torch.no_grad():
        scores = head.logits(torch.as_tensor(test_x)).numpy()
    return float(np.mean([roc_auc_score(test_y[:, j], scores[:, j]) for j in range(2)]))


def test_dp_head_learns_separable_features_and_100x_noise_drowns_them() -> None:
    # Prepare / Execute
    private = _held_out_auc(noise_multiplier=2.0)
    drowned = _held_out_auc(noise_multiplier=200.0)
    # Assert
    assert private > 0.9
    assert drowned < 0.7


def test_untrained_head_predicts_the_prior() -> None:
    head = LinearFindingHead(3, 2, prevalence=[0.2, 0.5])
    probabilities = torch.sigmoid(head.logits(torch.randn(4, 3)))
    torch.testing.assert_close(probabilities, torch.tensor([[0.2, 0.5]]).expand(4, 2))


def test_feature_dataset_refuses_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="same N"):
        feature_dataset(np.zeros((3, 4)), np.zeros((2, 1)))
