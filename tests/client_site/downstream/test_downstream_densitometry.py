"""Chest densitometry: the chest mask, the soft histogram and the features, on hand-made volumes."""

from __future__ import annotations

import pytest
import torch

from client_site.downstream.densitometry import (
    DENSITY_BINS, FEATURE_GAIN, NUM_DENSITY_FEATURES, NUM_ZONE_FEATURES, NUM_ZONES, ZONE_BINS,
    chest_densitometry, chest_mask, closed_lung_mask, lung_window_value, lung_zone_densitometry,
    soft_histogram,
)

AIR = lung_window_value(-1000.0)
LUNG = lung_window_value(-850.0)
TISSUE = lung_window_value(40.0)


def test_lung_window_value_maps_the_window_ends_to_0_and_1() -> None:
    assert lung_window_value(-1350.0) == pytest.approx(0.0)
    assert lung_window_value(150.0) == pytest.approx(1.0)


def test_chest_mask_spans_from_the_first_to_the_last_dense_voxel_of_each_row() -> None:
    rows = torch.tensor([[AIR, TISSUE, LUNG, LUNG, TISSUE, AIR],
                         [AIR, AIR, AIR, AIR, AIR, AIR],
                         [AIR, AIR, TISSUE, AIR, AIR, AIR]])
    mask = chest_mask(rows.reshape(1, 1, 3, 6))[0, 0]
    assert mask.tolist() == [[False, True, True, True, True, False],
                             [False] * 6,
                             [False, False, True, False, False, False]]


def test_soft_histogram_splits_a_voxel_between_its_two_nearest_levels() -> None:
    step = 1.0 / (DENSITY_BINS - 1)
    values = torch.tensor([[0.0, 3 * step, 3.5 * step, 9.0]])  # the last is masked out
    mask = torch.tensor([[True, True, True, False]])
    hist = soft_histogram(values, mask)[0]
    expected = torch.zeros(DENSITY_BINS)
    expected[0], expected[3], expected[4] = 1 / 3, 1 / 3 + 1 / 6, 1 / 6
    torch.testing.assert_close(hist, expected)


def test_soft_histogram_of_an_empty_mask_is_zero() -> None:
    hist = soft_histogram(torch.rand(2, 5), torch.zeros(2, 5, dtype=torch.bool))
    assert hist.shape == (2, DENSITY_BINS) and not hist.any()


def _chest(rows: int = 8, cols: int = 8) -> torch.Tensor:
    """One slice: a tissue ring around lung, air outside, all windows equal (B=1, C=3, D=1)."""
    lung = torch.full((rows, cols), AIR)
    lung[1:-1, 1:-1] = TISSUE
    lung[2:-2, 2:-2] = LUNG
    return lung.expand(1, 3, 1, rows, cols).clone()


def test_features_are_scaled_fractions_of_the_chest_and_of_its_posterior_half() -> None:
    features = chest_densitometry(_chest())[0]
    assert features.shape == (NUM_DENSITY_FEATURES,)
    whole, posterior = features[:DENSITY_BINS], features[DENSITY_BINS:]
    assert whole.sum().item() == pytest.approx(FEATURE_GAIN)
    assert posterior.sum().item() == pytest.approx(FEATURE_GAIN)
    # the chest is 6 x 6 voxels of which the inner 4 x 4 are lung: tissue share 20/36 ...
    tissue_share = soft_histogram(torch.tensor([[TISSUE]]), torch.tensor([[True]]))[0] * FEATURE_GAIN
    lung_share = soft_histogram(torch.tensor([[LUNG]]), torch.tensor([[True]]))[0] * FEATURE_GAIN
    torch.testing.assert_close(whole, (20 * tissue_share + 16 * lung_share) / 36)
    # ... and the posterior half (rows 4-6 of the chest: 3 x 6, with 2 x 4 lung) 10/18 tissue.
    torch.testing.assert_close(posterior, (10 * tissue_share + 8 * lung_share) / 18)


def test_air_around_the_body_does_not_change_the_features() -> None:
    small = _chest(8, 8)
    padded = torch.full((1, 3, 1, 8, 14), AIR)
    padded[..., 3:11] = small
    torch.testing.assert_close(chest_densitometry(padded), chest_densitometry(small))


def test_posterior_fluid_shows_in_the_posterior_half_only() -> None:
    effusion = _chest()
    effusion[..., 5:6, 2:6] = TISSUE  # dependent fluid: rows run anterior -> posterior
    before, after = chest_densitometry(_chest())[0], chest_densitometry(effusion)[0]
    tissue_bin = int(torch.argmax(soft_histogram(torch.tensor([[TISSUE]]), torch.tensor([[True]]))[0]))
    assert after[DENSITY_BINS + tissue_bin] > before[DENSITY_BINS + tissue_bin]
    assert (after[DENSITY_BINS + tissue_bin] - before[DENSITY_BINS + tissue_bin]) > \
        (after[tissue_bin] - before[tissue_bin])


def test_features_of_one_example_do_not_depend_on_the_batch() -> None:
    batch = torch.cat([_chest(), torch.rand(1, 3, 1, 8, 8)])
    torch.testing.assert_close(chest_densitometry(batch)[:1], chest_densitometry(_chest()))


def _lungs(depth: int = 6, size: int = 32) -> torch.Tensor:
    """Tissue body with two aerated lungs and a 9-voxel mediastinum between them, air outside;
    all windows equal."""
    lung = torch.full((depth, size, size), AIR)
    lung[:, 2:-2, 2:-2] = TISSUE
    lung[:, 5:-5, 4:12] = LUNG
    lung[:, 5:-5, 21:29] = LUNG
    return lung.expand(1, 3, depth, size, size).clone()


def test_closed_lung_mask_keeps_a_nodule_inside_the_lung() -> None:
    volume = _lungs()
    volume[:, :, 3, 9:11, 6:8] = TISSUE  # a 2 x 2 nodule inside the right lung
    lung = volume[:, 0]
    closed = closed_lung_mask(lung, chest_mask(lung))
    assert closed[0, 3, 9:11, 6:8].all()
    assert not closed[0, 3, 2:5, :].any()  # the chest wall stays out
    assert not closed[0, 3, 10, 12:21].any()  # and so does the mediastinum between the lungs


def test_zone_features_have_the_documented_width_and_sum_to_the_gain() -> None:
    features = lung_zone_densitometry(_lungs())[0]
    assert features.shape == (NUM_ZONE_FEATURES,)
    for zone in range(NUM_ZONES):
        start = zone * (ZONE_BINS + 1)
        assert features[start:start + ZONE_BINS].sum().item() == pytest.approx(FEATURE_GAIN)


def test_a_lesion_shows_in_its_own_zone_only() -> None:
    healthy = _lungs()
    lesion = healthy.clone()
    lesion[:, :, :2, 17:22, 5:10] = TISSUE  # lower third (z ascending), posterior rows
    before, after = lung_zone_densitometry(healthy)[0], lung_zone_densitometry(lesion)[0]
    changed = [z for z in range(NUM_ZONES)
               if not torch.allclose(before[z * (ZONE_BINS + 1):(z + 1) * (ZONE_BINS + 1)],
                                     after[z * (ZONE_BINS + 1):(z + 1) * (ZONE_BINS + 1)])]
    assert changed == [1]  # lower third, posterior half (rows 17-21 of 32)
    assert after[-1] > before[-1]  # more of the lung is not aerated


def test_zone_features_of_one_example_do_not_depend_on_the_batch() -> None:
    batch = torch.cat([_lungs(), torch.rand(1, 3, 6, 32, 32)])
    torch.testing.assert_close(lung_zone_densitometry(batch)[:1], lung_zone_densitometry(_lungs()))
