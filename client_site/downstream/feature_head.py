"""A linear finding head on fixed per-patient features, trainable with DP-SGD.

What a site trains privately when the encoder is frozen: one logistic output per finding on
features computed once per study (the frozen encoder's scan embedding and the parameter-free
densitometry). Linear heads on fixed features are the strongest simple recipe under DP
(Tramer & Boneh, "Differentially private learning needs better features (or much more data)",
ICLR 2021; Mehta et al., "Towards large scale transfer learning for differentially private
image classification", TMLR 2023): few parameters, so little noise, and with full-batch DP-GD
(sample rate 1) every step sees every patient.

:func:`~client_site.training.train_locally` trains it with the same DP-SGD loop, accountant and
per-patient clipping as the whole model (one item of :func:`feature_dataset` = one patient).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from client_site.model import LossParts


class FeatureStandardiser(nn.Module):
    """``(x - mean) / scale`` per feature column, with statistics of public data only.

    A linear head trained by a few full-batch SGD steps needs centred, comparable features. The
    statistics are buffers (they travel with the model's weights, nothing trains them); they
    must come from data no site holds (public phantoms, :meth:`fit`), never from a site's
    patients, whose statistics would be an unaccounted release. A new standardiser is the
    identity (mean 0, scale 1).

    Parameters
    ----------
    width : int
        Feature columns.
    """

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, width: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("scale", torch.ones(width))

    def fit(self, public: np.ndarray | torch.Tensor) -> FeatureStandardiser:
        """Set the column means and standard deviations (floored at 1e-3) of ``public`` (N, width); returns self."""
        x = torch.as_tensor(np.asarray(public), dtype=torch.float32)
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0] or len(x) < 2:
            raise ValueError(f"public features must be (N >= 2, {self.mean.shape[0]}), got {tuple(x.shape)}")
        with torch.no_grad():
            self.mean.copy_(x.mean(dim=0))
            self.scale.copy_(x.std(dim=0, unbiased=False).clamp(min=1e-3))
        return self

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Standardised ``features`` (B, width)."""
        return (features - self.mean) / self.scale


class LinearFindingHead(nn.Module):
    """Features (B, in_features) -> one logit per finding; zero-initialised weights.

    Parameters
    ----------
    in_features, num_findings : int
        Input width and outputs.
    prevalence : sequence of float, optional
        Prior positive rate of each finding: the bias starts at its log-odds, so an untrained
        head predicts the base rates instead of 0.5. Take it from public knowledge or from
        public data, not from the site's patients (that would be an unaccounted release).
        (default: 0.5 each)
    """

    def __init__(self, in_features: int, num_findings: int, *,
                 prevalence: Sequence[float] | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_findings)
        nn.init.zeros_(self.linear.weight)
        rate = torch.full((num_findings,), 0.5) if prevalence is None else \
            torch.as_tensor(prevalence, dtype=torch.float32).clamp(0.01, 0.99)
        if rate.shape != (num_findings,):
            raise ValueError(f"prevalence must have {num_findings} values, got {tuple(rate.shape)}")
        with torch.no_grad():
            self.linear.bias.copy_(torch.log(rate / (1 - rate)))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Features (B, in_features) -> logits (B, num_findings)."""
        return self.linear(features)

    def forward(self, features: torch.Tensor, targets: torch.Tensor,
                has_label: torch.Tensor) -> tuple[torch.Tensor, LossParts]:
        """Per-patient mean BCE over the findings (B,), 0 where ``has_label`` is 0, and its parts."""
        bce = F.binary_cross_entropy_with_logits(self.linear(features), targets, reduction="none")
        loss = bce.mean(dim=1) * has_label
        return loss, {"loss": loss.detach().mean()}


class FeatureObjective:
    """Batches of :func:`feature_dataset` -> :class:`LinearFindingHead` inputs (features first)."""

    parts: tuple[str, ...] = ("loss",)

    def model_inputs(self, batch: Sequence[torch.Tensor], *,
                     generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Keyword inputs of ``LinearFindingHead.forward``; deterministic (no generator use)."""
        features, targets, has_label = batch
        return {"features": features, "targets": targets, "has_label": has_label}

    def part_counts(self, batch: Sequence[torch.Tensor]) -> dict[str, float]:
        """Every example counts in the total."""
        return {"loss": float(batch[0].shape[0])}


def feature_dataset(features: np.ndarray, targets: np.ndarray,
                    has_label: np.ndarray | None = None) -> TensorDataset:
    """One item per patient: ``(features (F,), targets (K,), has_label ())`` as float32."""
    x = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(targets), dtype=torch.float32)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"features (N, F) and targets (N, K) must be 2D with the same N, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    mask = torch.ones(len(x)) if has_label is None else torch.as_tensor(np.asarray(has_label), dtype=torch.float32)
    return TensorDataset(x, y, mask)
