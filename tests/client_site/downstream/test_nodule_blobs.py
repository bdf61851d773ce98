"""Lung-nodule blob block: a nodule shows in its own zone, vessels and the chest wall stay below it."""

from __future__ import annotations

import numpy as np
import torch

from client_site.downstream.densitometry import NUM_DENSITY_FEATURES, NUM_ZONE_FEATURES, NUM_ZONES, lung_window_value
from client_site.downstream.heads import NUM_FEATURES, densitometry_features
from client_site.downstream.nodule_blobs import (
    BLOB_SCALES,
    BLOB_THRESHOLDS_HU,
    NUM_NODULE_FEATURES,
    PER_ZONE,
    blob_response,
    nodule_blob_features,
)

AIR, LUNG, TISSUE = lung_window_value(-1000.0), lung_window_value(-850.0), lung_window_value(40.0)


def _lungs(depth: int = 12, size: int = 64) -> torch.Tensor:
    """Lung window (D, H, W): a soft-tissue body with two aerated lungs and the mediastinum
    between them, air outside."""
    lung = torch.full((depth, size, size), AIR)
    lung[:, 4:-4, 4:-4] = TISSUE
    lung[:, 10:-10, 8:28] = LUNG
    lung[:, 10:-10, 36:56] = LUNG
    return lung


def _with_vessels(lung: torch.Tensor) -> torch.Tensor:
    """One-voxel vessels: through-plane (along z), in-plane (along a row) and a short oblique run."""
    out = lung.clone()
    out[:, 24, 14] = TISSUE
    out[5, 40, 40:52] = TISSUE
    out[2:9, 18, 45] = TISSUE
    return out


def _with_nodule(lung: torch.Tensor, z: int = 9, row: int = 20, col: int = 18) -> torch.Tensor:
    """A solid nodule of radius 2 voxels (10 mm on the demo grid) in one slice of the right lung."""
    out = lung.clone()
    rows, cols = torch.meshgrid(torch.arange(lung.shape[1]), torch.arange(lung.shape[2]), indexing="ij")
    out[z][(rows - row) ** 2 + (cols - col) ** 2 <= 4] = TISSUE
    return out


def _block(lung: torch.Tensor) -> torch.Tensor:
    """Features of one lung-window volume, shaped (zone, scale, [max, shares...])."""
    volume = lung.expand(1, 3, *lung.shape).clone()
    return nodule_blob_features(volume)[0].reshape(NUM_ZONES, len(BLOB_SCALES), -1)


def test_block_width_and_layout_are_the_documented_ones() -> None:
    assert PER_ZONE == len(BLOB_SCALES) * (1 + len(BLOB_THRESHOLDS_HU))
    assert NUM_NODULE_FEATURES == NUM_ZONES * PER_ZONE == 36
    assert NUM_FEATURES == NUM_DENSITY_FEATURES + NUM_ZONE_FEATURES + NUM_NODULE_FEATURES == 124
    assert nodule_blob_features(torch.rand(3, 3, 8, 32, 32)).shape == (3, NUM_NODULE_FEATURES)


def test_healthy_lungs_chest_wall_and_mediastinum_give_no_response() -> None:
    assert not _block(_lungs()).any()


def test_a_nodule_raises_the_response_of_its_own_zone_only() -> None:
    without = _block(_with_vessels(_lungs()))
    with_nodule = _block(_with_nodule(_with_vessels(_lungs())))
    changed = [z for z in range(NUM_ZONES) if not torch.equal(without[z], with_nodule[z])]
    assert changed == [4]  # upper third (slice 9 of 12), anterior rows (20 of 64)
    assert (with_nodule[4, :, 0] > without[4, :, 0]).all()  # both scales
    assert (with_nodule[4, :, 1] > without[4, :, 1]).all()  # and above the lower threshold


def test_a_nodule_answers_more_strongly_than_any_vessel() -> None:
    vessels = _block(_with_vessels(_lungs()))
    nodule_only = _block(_with_nodule(_lungs()))
    for scale in range(len(BLOB_SCALES)):
        assert nodule_only[4, scale, 0] > vessels[:, scale, 0].max()


def test_blob_response_peaks_at_a_ball_of_the_matched_scale() -> None:
    z, y, x = np.mgrid[:21, :21, :21]
    peaks = []
    for radius in (2.0, 3.5, 6.0):
        ball = np.where((z - 10) ** 2 + (y - 10) ** 2 + (x - 10) ** 2 <= radius**2, 900.0, 0.0).astype(np.float32)
        peaks.append(blob_response(ball, 2.0, 2.0)[10, 10, 10])
    assert peaks[1] > peaks[0] and peaks[1] > peaks[2]  # sigma 2 -> radius about 2 x sqrt(3)
    assert 0.8 * 900.0 < peaks[1] < 900.0  # about 0.93 x the contrast at the matched radius


def test_block_of_one_example_does_not_depend_on_the_batch() -> None:
    one = _with_nodule(_lungs()).expand(1, 3, 12, 64, 64).clone()
    batch = torch.cat([one, torch.rand(1, 3, 12, 64, 64)])
    torch.testing.assert_close(nodule_blob_features(batch)[:1], nodule_blob_features(one))


def test_the_heads_densitometry_carries_the_nodule_block_after_the_zones() -> None:
    lung = _with_nodule(_lungs())
    volume = lung.expand(1, 3, *lung.shape).clone()
    features = densitometry_features(volume)[0]
    assert features.shape == (NUM_FEATURES,)
    torch.testing.assert_close(features[NUM_DENSITY_FEATURES + NUM_ZONE_FEATURES:], nodule_blob_features(volume)[0])
