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
import torch.nn.functional as F

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


AERATED_HU = -500.0
"""Voxels of the chest below this are aerated lung (or airway)."""

CLOSING_VOXELS = 7
"""In-plane side of the square closing that turns the aerated voxels into a lung mask: it fills
what lies inside the lungs (nodules, consolidation, vessels) up to about this many voxels
across (35 mm on the demo grid)."""

ZONE_BINS = 8
"""Levels of each lung zone's soft histogram."""

CRANIOCAUDAL_ZONES = 3
"""Upper, middle and lower thirds of the slices; each split into anterior and posterior."""

NUM_ZONES = 2 * CRANIOCAUDAL_ZONES

NUM_ZONE_FEATURES = NUM_ZONES * (ZONE_BINS + 1) + 2
"""Width of :func:`lung_zone_densitometry`: per zone a lung-window histogram and the mean
mediastinum-window value, then the lung's share of the chest and its non-aerated share."""


def closed_lung_mask(lung: torch.Tensor, chest: torch.Tensor) -> torch.Tensor:
    """Aerated chest voxels closed in-plane by :data:`CLOSING_VOXELS` (dilation, then erosion).

    ``lung`` lung-window volume (B, D, H, W) in [0, 1], ``chest`` its :func:`chest_mask` -> bool
    (B, D, H, W) inside the chest. The closing keeps dense lesions inside the lungs (a nodule
    or a consolidated lobe surrounded by aerated lung) in the mask, which a threshold alone
    would cut out together with the disease it should measure.
    """
    aerated = (chest & (lung < lung_window_value(AERATED_HU))).to(lung.dtype)
    k = CLOSING_VOXELS
    x = aerated.reshape(-1, 1, *aerated.shape[-2:])  # one image per slice: (B * D, 1, H, W)
    grown = F.max_pool2d(x, k, stride=1, padding=k // 2)
    closed = -F.max_pool2d(-grown, k, stride=1, padding=k // 2)
    return (closed.reshape(aerated.shape) > 0.5) & chest


def zone_masks(mask: torch.Tensor) -> list[torch.Tensor]:
    """The :data:`NUM_ZONES` lung zones of ``mask`` (B, D, H, W): thirds of the slices (z
    ascending: lower first), each cut into the anterior and posterior halves of the rows."""
    depth, rows = mask.shape[1], mask.shape[2]
    bounds = [round(depth * i / CRANIOCAUDAL_ZONES) for i in range(CRANIOCAUDAL_ZONES + 1)]
    zones = []
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        for front, back in ((0, rows // 2), (rows // 2, rows)):
            zone = torch.zeros_like(mask)
            zone[:, low:high, front:back] = True
            zones.append(mask & zone)
    return zones


def lung_zone_densitometry(volume: torch.Tensor) -> torch.Tensor:
    """Density of each lung zone of a closed aerated-lung mask, scaled (parameter-free).

    Volume (B, C, D, H, W) in [0, 1] (lung, mediastinum, bone windows; rows anterior ->
    posterior) -> (B, :data:`NUM_ZONE_FEATURES`) = :data:`FEATURE_GAIN` x: per zone
    (:func:`zone_masks`) the :data:`ZONE_BINS`-level lung-window histogram and the mean
    mediastinum-window value (fluid and soft tissue, which the lung window saturates), then
    the closed lung's share of the chest and the share of the closed lung that is not aerated.
    Where a finding sits (upper-zone emphysema, dependent effusion, lobar consolidation) shows
    in its zone, which a whole-chest histogram averages away. Differentiable in the voxel values
    (the masks are not).
    """
    lung, mediastinum = volume[:, 0], volume[:, 1]
    chest = chest_mask(lung)
    closed = closed_lung_mask(lung, chest)
    features = []
    for zone in zone_masks(closed):
        weight = zone.to(volume.dtype)
        count = weight.sum(dim=(1, 2, 3)).clamp(min=1.0)
        features += [soft_histogram(lung, zone, ZONE_BINS),
                     ((mediastinum * weight).sum(dim=(1, 2, 3)) / count).unsqueeze(1)]
    lung_voxels = closed.sum(dim=(1, 2, 3)).to(volume.dtype)
    aerated = (closed & (lung < lung_window_value(AERATED_HU))).sum(dim=(1, 2, 3)).to(volume.dtype)
    shares = torch.stack([lung_voxels / chest.sum(dim=(1, 2, 3)).clamp(min=1).to(volume.dtype),
                          1.0 - aerated / lung_voxels.clamp(min=1.0)], dim=1)
    return FEATURE_GAIN * torch.cat([*features, shares], dim=1)
