"""SmoothGrad saliency of the diagnosis head: shape, range, determinism, and where it points."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from client_site.downstream.model import ClinicalMedMPT
from client_site.downstream.saliency import SaliencyConfig, saliency_maps
from client_site.findings import FINDINGS

SHAPE = (4, 16, 16)  # (D, H, W)


class _HotVoxels(nn.Module):
    """Stand-in: the logit of finding k is a weighted sum of the volume that peaks at voxel ``spots[k]``."""

    def __init__(self, spots: list[tuple[int, int, int]]) -> None:
        super().__init__()
        weight = torch.full((len(FINDINGS), *SHAPE), 0.01)
        for k, spot in enumerate(spots):
            weight[(k, *spot)] = 1.0
        self.weight = nn.Parameter(weight)

    def diagnosis_logits(self, volume: torch.Tensor) -> torch.Tensor:
        # (B, 3, D, H, W) -> (B, F); the gradient w.r.t. the lung window is weight[k] for every input
        return torch.einsum("bdhw,fdhw->bf", volume[:, 0], self.weight)


def test_maps_peak_where_the_logit_depends_on_the_volume() -> None:
    # Prepare: one distinct hot voxel per finding
    spots = [(0, 2, 3), (1, 12, 4), (2, 7, 7), (3, 1, 14), (3, 14, 14)]
    model = _HotVoxels(spots)
    volume = torch.rand(3, *SHAPE, generator=torch.Generator().manual_seed(0))
    # Execute
    maps = saliency_maps(model, volume, config=SaliencyConfig(samples=4))
    # Assert
    assert list(maps) == list(FINDINGS)
    for name, spot in zip(FINDINGS, spots):
        heat = maps[name]
        assert heat.shape == SHAPE and heat.dtype == np.float32
        assert heat.min() == 0.0 and heat.max() == pytest.approx(1.0)
        assert np.unravel_index(int(np.argmax(heat)), SHAPE) == spot


def test_real_model_maps_are_deterministic_and_leave_the_model_as_it_was(tiny_cfg, single_thread) -> None:
    # Prepare
    torch.manual_seed(0)
    model = ClinicalMedMPT(tiny_cfg).train()
    with torch.no_grad():  # a fresh head is zero (no saliency at all); give it trained-like weights
        model.clinical_heads.diagnosis.linear.weight.normal_()
    volume = torch.rand(3, tiny_cfg.num_slices, tiny_cfg.image_size, tiny_cfg.image_size)
    config = SaliencyConfig(samples=3, seed=5)
    # Execute
    first = saliency_maps(model, volume, findings=["nodule", "pleural_effusion"], config=config)
    again = saliency_maps(model, volume, findings=["nodule", "pleural_effusion"], config=config)
    other_seed = saliency_maps(model, volume, findings=["nodule"], config=SaliencyConfig(samples=3, seed=6))
    # Assert
    assert set(first) == {"nodule", "pleural_effusion"}
    for name, heat in first.items():
        assert heat.shape == tuple(volume.shape[1:])
        assert 0.0 <= heat.min() and heat.max() <= 1.0 and heat.max() == pytest.approx(1.0)
        np.testing.assert_array_equal(heat, again[name])
    assert not np.array_equal(first["nodule"], other_seed["nodule"])
    assert model.training and all(p.grad is None for p in model.parameters())


def test_bad_inputs_are_refused() -> None:
    model = _HotVoxels([(0, 0, 0)] * len(FINDINGS))
    with pytest.raises(ValueError, match="volume must be"):
        saliency_maps(model, torch.rand(1, 3, *SHAPE))
    with pytest.raises(ValueError, match="unknown finding"):
        saliency_maps(model, torch.rand(3, *SHAPE), findings=["pneumothorax"])
    with pytest.raises(ValueError, match="samples"):
        SaliencyConfig(samples=0)


def test_focus_region_keeps_the_hottest_part_of_the_chest_only():
    # Prepare: a body (dense ring, lung inside) on air; the map is broad noise plus a hot spot,
    # and is hottest of all in the air outside the body
    from client_site.downstream.saliency import focus_region

    volume = np.zeros((3, 4, 32, 32), dtype=np.float32)
    volume[0, :, 4:28, 4:28] = 0.9  # chest wall
    volume[0, :, 6:26, 6:26] = 0.1  # lung
    heat = np.random.default_rng(0).uniform(0.2, 0.5, (4, 32, 32)).astype(np.float32)
    heat[2, 12:14, 12:14] = 0.9
    heat[:, 0:2, 0:2] = 1.0  # outside the body
    # Execute
    focus = focus_region(heat, volume, fraction=0.01)
    # Assert: a small region at the hot spot, nothing in the air, zero elsewhere
    kept = focus > 0
    assert kept[2, 12:14, 12:14].all() and not kept[:, 0:2, 0:2].any()
    assert kept.sum() <= 0.02 * 4 * 24 * 24 and focus.max() == 1.0 and focus.dtype == np.float32
