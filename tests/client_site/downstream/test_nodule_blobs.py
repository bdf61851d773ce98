"""Lung-nodule blob block: a nodule shows in its own zone, vessels and the chest wall stay below it."""

from __future__ import annotations

import numpy as np
import torch

from client_site.downstream.densitometry import (
    NUM_DENSITY_FEATURES,
    NUM_ZONE_FEATURES,
    NUM_ZONES,
    lung_window_value,
    zone_masks,
)
from client_site.downstream.heads import NUM_FEATURES, densitometry_features
from client_site.downstream.nodule_blobs import (
    BLOB_SCALES,
    BLOB_THRESHOLDS_HU,
    NUM_NODULE_FEATURES,
    PER_ZONE,
    blob_response,
    nodule_blob_features,
)
from client_site.ingestion.preprocess import preprocess_mask, preprocess_volume
from federation.presets import get_preset
from synthetic.anatomy import sample_anatomy
from synthetic.lesions import sample_nodule
from synthetic.profiles import site_profiles
from synthetic.render import plan_positioning, render_series

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



def _demo_volume(series) -> tuple[torch.Tensor, np.ndarray]:
    """A rendered series preprocessed onto the demo grid, with its voxel-to-LPS affine."""
    px = series.pixel_mm
    affine = np.array([[0, 0, px, series.position[0]], [0, px, 0, series.position[1]],
                       [series.thickness_mm, 0, 0, series.z_positions[0]], [0, 0, 0, 1.0]])
    volume = preprocess_volume(series.hu.astype(np.float32), affine, get_preset("demo").preprocess)
    return torch.from_numpy(volume.astype(np.float32))[None], affine


def test_a_generated_nodule_raises_the_largest_response_of_its_own_zones_only() -> None:
    """Six generated phantoms (first site profile: 5-mm slices), each rendered with and without one
    nodule under the same scanner noise, on the demo grid: no zone without the nodule gains, and in
    most phantoms a zone with it does (on this coarse grid one nodule in six stays hidden)."""
    profile = site_profiles(1)[0]
    raised = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        anat = sample_anatomy(rng, female=False, fov_mm=profile.fov_mm, hyperinflated=False, cardiomegaly=False)
        position = plan_positioning(anat, profile, rng)
        nodule = sample_nodule(anat, rng, avoid=[], z_min=-1e9)
        largest = []
        for lesions in ([], [nodule]):
            series = render_series(anat, lesions, profile, position, matrix=128, rng=np.random.default_rng(100 + seed))
            volume, affine = _demo_volume(series)
            largest.append(nodule_blob_features(volume)[0].reshape(NUM_ZONES, len(BLOB_SCALES), -1)[:, :, 0])
        mask = torch.from_numpy(preprocess_mask(series.masks["nodule"], affine, get_preset("demo").preprocess))
        own = [bool(zone.any()) for zone in zone_masks(mask[None])]
        gain = (largest[1] - largest[0]).amax(dim=1)  # per zone, the larger gain of the two scales
        assert all(gain[z] < 0.1 for z in range(NUM_ZONES) if not own[z]), (seed, gain)
        raised += bool(max(gain[z] for z in range(NUM_ZONES) if own[z]) > 0.2)
    assert raised >= 5
