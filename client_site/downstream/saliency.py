"""Per-finding saliency maps of the diagnosis head over the input volume (SmoothGrad).

For each finding, SmoothGrad (Smilkov et al., "SmoothGrad: removing noise by adding noise",
2017) takes the gradient of that finding's diagnosis logit with respect to the input volume on
noisy copies of the volume and keeps its root mean square over the copies (the ``magnitude``
variant of :class:`monai.visualize.SmoothGrad`). The map is then summed over the three CT
windows, smoothed with a small Gaussian (MONAI ``GaussianSmooth``) and min-max normalised to
[0, 1]: one (D, H, W) map per finding on the cache grid. Gradient methods need no convolutional
layer, so they fit the patch-linear ViT of MedMPT, where Grad-CAM has no spatial feature map.

Why not ``monai.visualize.SmoothGrad`` itself: it accepts a batch of one, so it runs one forward
and one backward pass per noisy copy and per finding, and it draws its noise from torch's global
generator. Here the copies go through the model as one batch, each finding costs one backward
pass of that batch, the noise comes from a seeded ``torch.Generator``, and only the input
receives gradients (``torch.autograd.grad``), so the model's parameter gradients are untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from client_site.downstream.densitometry import chest_mask
from client_site.findings import FINDINGS


@dataclass(frozen=True)
class SaliencyConfig:
    """SmoothGrad settings (defaults sized for a CPU draft of one study).

    Parameters
    ----------
    samples : int
        Noisy copies averaged per finding. (default: 8)
    noise : float
        Noise standard deviation as a fraction of the volume's intensity range, SmoothGrad's
        ``stdev_spread``. (default: 0.1)
    smoothing_voxels : float
        Standard deviation of the Gaussian applied to the summed map, in voxels; 0 = none.
        (default: 1.0)
    seed : int
        Seed of the noise. (default: 0)
    """

    samples: int = 8
    noise: float = 0.1
    smoothing_voxels: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.noise < 0 or self.smoothing_voxels < 0:
            raise ValueError(f"noise and smoothing_voxels must be >= 0, got {self.noise} and {self.smoothing_voxels}")


def saliency_maps(
    model: nn.Module, volume: torch.Tensor, *, findings: Sequence[str] = FINDINGS,
    config: SaliencyConfig | None = None,
) -> dict[str, np.ndarray]:
    """SmoothGrad maps of the diagnosis logits of ``findings`` for one volume.

    Parameters
    ----------
    model : nn.Module
        A model with ``diagnosis_logits(volume (B, 3, D, H, W)) -> (B, len(FINDINGS))``, e.g.
        :class:`~client_site.downstream.model.ClinicalMedMPT`. Run in eval mode; its training
        flag is restored afterwards.
    volume : torch.Tensor
        ``(3, D, H, W)`` cached volume (windows, slices, rows, cols), any float dtype.
    findings : Sequence[str]
        Names from ``FINDINGS`` to explain. (default: all)
    config : SaliencyConfig, optional
        SmoothGrad settings. (default: ``SaliencyConfig()``)

    Returns
    -------
    dict[str, np.ndarray]
        Finding -> float32 ``(D, H, W)`` map in [0, 1] (all zeros when the gradient is constant).
    """
    from monai.transforms import GaussianSmooth

    config = config or SaliencyConfig()
    if volume.dim() != 4 or volume.shape[0] != 3:
        raise ValueError(f"volume must be (3, D, H, W), got {tuple(volume.shape)}")
    unknown = [f for f in findings if f not in FINDINGS]
    if unknown:
        raise ValueError(f"unknown finding(s) {unknown}; expected names from {FINDINGS}")
    x = volume.detach().to(torch.float32)
    generator = torch.Generator().manual_seed(config.seed)
    stdev = config.noise * float(x.max() - x.min())
    noisy = x + stdev * torch.randn((config.samples, *x.shape), generator=generator)  # (S, 3, D, H, W)
    noisy.requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        logits = model.diagnosis_logits(noisy)  # type: ignore[operator]  # (S, len(FINDINGS))
        maps = {}
        for k, name in enumerate(findings):
            (grad,) = torch.autograd.grad(logits[:, FINDINGS.index(name)].sum(), noisy,
                                          retain_graph=k + 1 < len(findings))
            heat = grad.pow(2).mean(dim=0).sqrt().sum(dim=0, keepdim=True)  # (1, D, H, W)
            if config.smoothing_voxels > 0:
                heat = torch.as_tensor(GaussianSmooth(sigma=config.smoothing_voxels)(heat))
            maps[name] = _normalise(heat[0].detach().cpu().numpy())
    finally:
        model.train(was_training)
    return maps


FOCUS_FRACTION = 0.02
"""Share of the chest's voxels that :func:`focus_region` keeps: the hottest 2 % (a 10-30 mm
lesion is 0.1-2 % of a chest on the demo grid; more would paint healthy lung)."""


def focus_region(heat: np.ndarray, volume: np.ndarray, *, fraction: float = FOCUS_FRACTION) -> np.ndarray:
    """The region that drove a finding: the map's hottest ``fraction`` of the chest, zero elsewhere.

    Parameters
    ----------
    heat : np.ndarray
        ``(D, H, W)`` saliency map in [0, 1] (:func:`saliency_maps`).
    volume : np.ndarray
        ``(3, D, H, W)`` cached volume; its lung window bounds the chest
        (:func:`~client_site.downstream.densitometry.chest_mask`: no air around the body, no padding).
    fraction : float
        Share of the chest's voxels kept, in (0, 1]. (default: :data:`FOCUS_FRACTION`)

    Returns
    -------
    np.ndarray
        float32 ``(D, H, W)``: the map rescaled to [0, 1] inside the kept region (its weakest voxel
        just above 0), exactly 0 outside; all zeros for an all-zero map.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    heat = np.asarray(heat, dtype=np.float32)
    chest = chest_mask(torch.from_numpy(np.asarray(volume[0], dtype=np.float32))[None])[0].numpy()
    inside = heat[chest]
    if inside.size == 0 or float(inside.max()) <= 0.0:
        return np.zeros_like(heat)
    cut = float(np.quantile(inside, 1.0 - fraction))
    kept = chest & (heat >= cut) & (heat > 0.0)
    top = float(heat[kept].max())
    scaled = (heat - cut) / max(top - cut, 1e-6) * 0.9 + 0.1  # weakest kept voxel at 0.1, not 0
    return np.where(kept, scaled.clip(0.0, 1.0), 0.0).astype(np.float32)


def _normalise(heat: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1] as float32; a constant map becomes all zeros."""
    low, high = float(heat.min()), float(heat.max())
    if not np.isfinite([low, high]).all():
        raise ValueError("saliency map contains NaN or inf (non-finite diagnosis gradient)")
    if high <= low:
        return np.zeros(heat.shape, dtype=np.float32)
    return ((heat - low) / (high - low)).astype(np.float32)
