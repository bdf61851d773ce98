"""Quantitative CT densitometry of the chest: parameter-free per-example features for diagnosis.

The density distribution inside the chest is the standard quantitative CT read-out: emphysema
as low-attenuation area, ground glass as an intermediate band, consolidation and effusion as
soft-tissue/fluid density where lung should be, effusion in the dependent (posterior) part.
A small ViT trained on a few hundred patients does not learn these from pixels within a few
hundred steps; the features below give the diagnosis head them directly.

Measured on the 3 x 40-patient synthetic consortium (90 training / 30 held-out patients, weak
labels from the reports, a linear head trained with AdamW at lr 3e-3, batch 8): held-out
macro-AUC 0.68 / 0.74 / 0.84 after 30 / 100 / 300 steps, against 0.58 / 0.58 / 0.57 for the
same head on the whole-volume log histogram that these features replaced (which counts the air
around the body and the padding, so it varies with body size more than with disease).

Everything is computed per example from the volume alone (no statistics fitted on site data),
so it is valid under DP-SGD; it is differentiable in the voxel values (saliency flows through
the soft histogram, not through the chest mask).
"""

from __future__ import annotations

import torch

from client_site.ingestion.preprocess import WINDOWS

DENSITY_BINS = 16
"""Evenly spaced lung-window levels of the soft histogram."""

CHEST_WALL_HU = -400.0
"""Voxels denser than this bound the chest along each image row (body wall, mediastinum)."""

FEATURE_GAIN = 10.0
"""Scale of the fractions (which sum to 1 over the bins): brings a linear head's logits into a
useful range within a few optimizer steps at the fine-tuning learning rates (1e-3 to 3e-3)."""

NUM_DENSITY_FEATURES = 2 * DENSITY_BINS
"""Width of :func:`chest_densitometry`: whole chest, then its posterior half."""

_LUNG_LEVEL, _LUNG_WIDTH = WINDOWS[0][1], WINDOWS[0][2]


def lung_window_value(hu: float) -> float:
    """The [0, 1] lung-window value of a Hounsfield unit (window 0 of :data:`WINDOWS`)."""
    return (hu - (_LUNG_LEVEL - _LUNG_WIDTH / 2)) / _LUNG_WIDTH


def chest_mask(lung: torch.Tensor) -> torch.Tensor:
    """Voxels between the first and the last voxel denser than :data:`CHEST_WALL_HU` of each row.

    ``lung``: lung-window volume (B, D, H, W) in [0, 1] -> bool (B, D, H, W). Excludes the air
    around the body and the padding, keeps the lungs, mediastinum and chest wall.
    """
    dense = (lung > lung_window_value(CHEST_WALL_HU)).to(torch.int8)
    from_right = dense.cummax(dim=-1).values.bool()
    from_left = dense.flip(-1).cummax(dim=-1).values.flip(-1).bool()
    return from_right & from_left


def soft_histogram(values: torch.Tensor, mask: torch.Tensor, bins: int = DENSITY_BINS) -> torch.Tensor:
    """Fractions of the masked voxels at ``bins`` evenly spaced levels of [0, 1].

    ``values`` and ``mask`` (B, ...) -> (B, bins). Each voxel votes for its two nearest levels
    (linear interpolation), so the fractions sum to 1 (0 everywhere when the mask is empty).
    """
    b = values.shape[0]
    x = values.reshape(b, -1, 1).clamp(0.0, 1.0)
    weight = mask.reshape(b, -1, 1).to(values.dtype)
    centres = torch.linspace(0.0, 1.0, bins, device=values.device, dtype=values.dtype)
    votes = (1.0 - (x - centres).abs() * (bins - 1)).clamp(min=0.0) * weight
    return votes.sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)


def chest_densitometry(volume: torch.Tensor) -> torch.Tensor:
    """Lung-window density histograms of the chest and of its posterior half, scaled.

    Volume (B, C, D, H, W) in [0, 1], rows anterior -> posterior (``docs/contracts.md`` section
    4) -> (B, :data:`NUM_DENSITY_FEATURES`) = :data:`FEATURE_GAIN` x the fractions.
    """
    lung = volume[:, 0]
    chest = chest_mask(lung)
    posterior = chest.clone()
    posterior[..., : lung.shape[-2] // 2, :] = False
    return FEATURE_GAIN * torch.cat([soft_histogram(lung, chest), soft_histogram(lung, posterior)], dim=1)
