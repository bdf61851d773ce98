"""MONAI preprocessing: windows, orientation, spacing, air padding."""

from __future__ import annotations

import numpy as np
import pytest
from ingestion_builders import phantom

from client_site.ingestion import WINDOWS, PreprocessConfig
from client_site.ingestion.preprocess import preprocess_volume

# Standard axial grid: slice axis +z (LPS S), rows +y (posterior), cols +x (patient left).
STANDARD = np.array([[0, 0, 0.7, -11.2], [0, 0.7, 0, -11.2], [2.5, 0, 0, -100.0], [0, 0, 0, 1]])


def _windowed(hu: np.ndarray) -> np.ndarray:
    return np.stack([np.clip((hu - (lv - w / 2)) / w, 0, 1) for _, lv, w in WINDOWS])


def test_native_grid_gives_exact_windows() -> None:
    hu = phantom().astype(np.float32)
    out = preprocess_volume(hu, STANDARD, PreprocessConfig(spacing_mm=(2.5, 0.7, 0.7), shape=(8, 32, 32)))
    assert out.dtype == np.float16 and out.shape == (3, 8, 32, 32)
    np.testing.assert_allclose(out.astype(np.float32), _windowed(hu), atol=2e-3)


def test_flipped_orientation_is_brought_to_standard_display() -> None:
    # Prepare: the same patient stored with rows/cols reversed (IOP -1,0,0,0,-1,0) and slices descending
    hu = phantom().astype(np.float32)
    flipped = hu[::-1, ::-1, ::-1].copy()
    affine = STANDARD.copy()
    affine[:3, :3] *= -1
    affine[:3, 3] = STANDARD[:3, :3] @ np.array([7, 31, 31]) + STANDARD[:3, 3]  # far corner becomes voxel 0
    config = PreprocessConfig(spacing_mm=(2.5, 0.7, 0.7), shape=(8, 32, 32))
    # Execute
    out = preprocess_volume(flipped, affine, config)
    # Assert
    np.testing.assert_allclose(out.astype(np.float32), _windowed(hu), atol=2e-3)


def test_default_config_resamples_and_pads_with_air() -> None:
    hu = phantom().astype(np.float32)
    out = preprocess_volume(hu, STANDARD, PreprocessConfig())
    assert out.shape == (3, 16, 64, 64) and out.dtype == np.float16
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    # 8 slices x 2.5 mm -> 2-3 slices at 10 mm, padded to 16 with 0 (air after windowing).
    assert np.all(out[:, 0] == 0) and np.all(out[:, -1] == 0)
    assert np.all(out[:, :, 0, :] == 0)  # 32 x 0.7 mm = 22 mm -> ~5 voxels at 5 mm, padded
    assert out.max() > 0.5  # tissue survives


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="spacing_mm"):
        PreprocessConfig(spacing_mm=(0.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="shape"):
        PreprocessConfig(shape=(16, 64))  # type: ignore[arg-type]
