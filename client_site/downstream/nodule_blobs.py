"""Lung-nodule blob response: a parameter-free feature block for the diagnosis head.

A solid nodule is a compact bright blob inside aerated lung; a vessel is a bright tube and the
chest wall or mediastinum a bright half-space. The scale-normalised Laplacian of Gaussian (LoG)
answers most strongly to a blob of about its own scale (Lindeberg 1998): a sphere curves the
intensity along all three axes, a tube along two, an edge along one. The block is the LoG
response of the lung window, in HU, at :data:`BLOB_SCALES`, kept only inside the closed
aerated-lung mask shrunk by one voxel in-plane (so the bright side of the pleura and the
mediastinum does not count), summarised per lung zone.

Fixed parameters, from the physics of the finding, never fitted on site data: nodules of 4-30 mm
(radius 2-15 mm), solid (soft tissue, about 40 HU, in lung at about -850 HU: about 900 HU of
contrast). The scales are in voxels (the volume carries no spacing): on the demo grid
(16 x 5 x 5 mm) in-plane sigma 1 and 2 voxels are 5 and 10 mm, matched to radii of about 9 and
17 mm (radius = sigma x sqrt(3)); through-plane sigma 0.5 voxel (8 mm) keeps a one- or two-slice
nodule from being averaged away. The response thresholds are fractions of the lung/soft-tissue
contrast (:data:`BLOB_THRESHOLDS_HU`).

Computed without gradient: saliency flows through the densitometry, not through the block.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from client_site.downstream.densitometry import (
    FEATURE_GAIN,
    NUM_ZONES,
    chest_mask,
    closed_lung_mask,
    zone_masks,
)
from client_site.ingestion.preprocess import WINDOWS

BLOB_SCALES: tuple[tuple[float, float], ...] = ((0.5, 1.0), (0.5, 2.0))
"""(through-plane, in-plane) Gaussian sigmas in voxels of the LoG."""

BLOB_THRESHOLDS_HU: tuple[float, ...] = (150.0, 300.0)
"""Response levels whose exceedance is counted: a sixth and a third of the ~900 HU nodule contrast."""

HU_SCALE = 1000.0
"""Responses are divided by this (HU -> about unit scale) before :data:`FEATURE_GAIN`."""

PER_ZONE = len(BLOB_SCALES) * (1 + len(BLOB_THRESHOLDS_HU))
"""Per zone and scale: the largest response, then the share of the zone above each threshold."""

NUM_NODULE_FEATURES = NUM_ZONES * PER_ZONE
"""Width of :func:`nodule_blob_features`."""

_LUNG_LOW, _LUNG_WIDTH = WINDOWS[0][1] - WINDOWS[0][2] / 2, WINDOWS[0][2]


def blob_response(hu: np.ndarray, sigma_z: float, sigma_xy: float) -> np.ndarray:
    """Scale-normalised negative LoG of one volume ``hu`` (D, H, W) in HU:
    ``-sum_a sigma_a^2 d^2/da^2 (G * hu)`` (scipy Gaussian derivative filters, edges replicated).

    Bright blobs give a positive response of the order of their contrast in HU (about 0.9 x the
    contrast at the centre of a ball of radius sigma x sqrt(3)).
    """
    sigmas = (sigma_z, sigma_xy, sigma_xy)
    total = np.zeros(hu.shape, dtype=np.float32)
    for axis, sigma in enumerate(sigmas):
        order = [2 if a == axis else 0 for a in range(3)]
        total -= sigma**2 * ndimage.gaussian_filter(hu, sigmas, order=order, mode="nearest", truncate=3.0)
    return total


@torch.no_grad()
def nodule_blob_features(volume: torch.Tensor) -> torch.Tensor:
    """Per lung zone and scale, the largest blob response and the shares above the thresholds.

    Volume (B, C, D, H, W) in [0, 1] (channel 0 the lung window; rows anterior -> posterior)
    -> (B, :data:`NUM_NODULE_FEATURES`), zone-major (:func:`~client_site.downstream.densitometry.zone_masks`
    order), then scale (:data:`BLOB_SCALES`), then [max / :data:`HU_SCALE`, share above each of
    :data:`BLOB_THRESHOLDS_HU`], all times :data:`FEATURE_GAIN`. An empty zone gives zeros.
    """
    lung = volume[:, 0].float()
    hu = lung * _LUNG_WIDTH + _LUNG_LOW
    closed = closed_lung_mask(lung, chest_mask(lung))
    inner = -F.max_pool2d(-closed.reshape(-1, 1, *closed.shape[-2:]).float(), 3, stride=1, padding=1)
    inner_mask = inner.reshape(closed.shape) > 0.5
    volumes = hu.cpu().numpy()
    responses = [torch.from_numpy(np.stack([blob_response(v, sz, sxy) for v in volumes])).to(hu.device)
                 for sz, sxy in BLOB_SCALES]
    columns = []
    for zone in zone_masks(inner_mask):
        weight = zone.float()
        count = weight.sum(dim=(1, 2, 3)).clamp(min=1.0)
        for response in responses:
            inside = torch.where(zone, response, torch.zeros_like(response))
            columns.append(inside.amax(dim=(1, 2, 3)).clamp(min=0.0) / HU_SCALE)
            columns += [((response > level) & zone).sum(dim=(1, 2, 3)) / count for level in BLOB_THRESHOLDS_HU]
    return FEATURE_GAIN * torch.stack(columns, dim=1).to(volume.dtype)
