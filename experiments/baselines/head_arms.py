"""Train the DP finding head of one arm: local-only, centralized, FedAvg, with or without DP.

Every arm trains the same :class:`~client_site.downstream.feature_head.LinearFindingHead` with
:func:`~client_site.training.train_locally` (Opacus DP-SGD, one patient = one example, full-batch
Poisson sampling at rate 1, plain SGD): a local-only model is a federation of one site, the
centralized model pools every site's training patients, FedAvg averages the sites' heads
weighted by their patients after each round. Settings are fixed in :class:`HeadTraining`
before any held-out or external patient is scored (they follow the published recipe for DP
linear probes: full batch, few steps at a large rate; Mehta et al. 2023).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from client_site.downstream.feature_head import FeatureObjective, LinearFindingHead, feature_dataset
from client_site.findings import FINDINGS
from client_site.training import TrainConfig, train_locally
from experiments.baselines.features import PatientFeatures
from privacy.accountant import epsilon_of
from privacy.planning import noise_for_target


@dataclass(frozen=True)
class HeadTraining:
    """How every arm trains its head (fixed before looking at any held-out patient).

    Parameters
    ----------
    rounds, local_steps : int
        FedAvg rounds and full-batch steps per site and round; a local-only or centralized
        head trains ``rounds * local_steps`` steps. (default: 5, 6)
    lr, max_grad_norm : float
        SGD rate and per-patient clipping norm. (default: 1.0, 1.0)
    delta : float
        DP delta of every DP arm. (default: 1e-4)
    """

    rounds: int = 5
    local_steps: int = 6
    lr: float = 1.0
    max_grad_norm: float = 1.0
    delta: float = 1e-4

    @property
    def total_steps(self) -> int:
        """Full-batch steps a site runs over the whole training."""
        return self.rounds * self.local_steps

    def noise_for(self, epsilon: float) -> float:
        """Noise multiplier whose ``rounds * local_steps`` full-batch steps spend ``epsilon``."""
        sigma, _ = noise_for_target(target_epsilon=epsilon, delta=self.delta, sample_rate=1.0,
                                    rounds=self.rounds, local_steps=self.local_steps)
        return sigma


@dataclass(frozen=True)
class TrainedHead:
    """A trained head and each member's epsilon (NaN without DP)."""

    head: LinearFindingHead
    epsilon: list[float]

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Finding logits ``(N, len(FINDINGS))``."""
        with torch.no_grad():
            return self.head.logits(torch.as_tensor(features, dtype=torch.float32)).numpy()


def _average(states: Sequence[dict[str, torch.Tensor]], weights: Sequence[int]) -> dict[str, torch.Tensor]:
    total = float(sum(weights))
    return {k: sum(s[k] * (w / total) for s, w in zip(states, weights, strict=True)) for k in states[0]}  # type: ignore[misc]


def train_head(members: Sequence[PatientFeatures], feature_set: str, training: HeadTraining, *,
               epsilon: float | None, pooled: bool = False) -> TrainedHead:
    """FedAvg of one head over ``members`` (one member: local-only; ``pooled``: one model on all
    members' patients, the centralized reference), under DP at ``epsilon`` per member or without."""
    if pooled:
        members = [PatientFeatures(*(np.concatenate([getattr(m, f) for m in members]) for f in
                                     ("embedding", "density", "weak_labels", "truth", "has_report")))]
    data = [feature_dataset(m.columns(feature_set), m.weak_labels, m.has_report) for m in members]
    width = data[0].tensors[0].shape[1]
    global_head = LinearFindingHead(width, len(FINDINGS))
    noise = None if epsilon is None else training.noise_for(epsilon)
    base = TrainConfig(local_steps=training.local_steps, lr=training.lr, optimizer="sgd",
                       max_grad_norm=training.max_grad_norm, dp=noise is not None,
                       noise_multiplier=noise or 1.0)
    histories: list[list[tuple[float, float, int]]] = [[] for _ in data]
    for _ in range(training.rounds):
        states, weights = [], []
        for index, dataset in enumerate(data):
            head = LinearFindingHead(width, len(FINDINGS))
            head.load_state_dict(global_head.state_dict())
            cfg = replace(base, expected_batch_size=len(dataset))  # full batch: q = 1
            result = train_locally(head, dataset, cfg, FeatureObjective())
            histories[index] += result.accountant_history
            states.append(result.state_dict)
            weights.append(len(dataset))
        global_head.load_state_dict(_average(states, weights))
    spent = [epsilon_of(h, delta=training.delta) if h else float("nan") for h in histories]
    return TrainedHead(global_head, spent)
