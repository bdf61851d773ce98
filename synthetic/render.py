"""Render one CT series of one patient: positioning, phantom, findings, scanner, masks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .anatomy import Anatomy
from .lesions import DRAW_ORDER, Lesion, draw_lesions
from .phantom import draw_anatomy
from .profiles import SiteProfile
from .scanner import acquire, average_slices, partial_volume_mask
from .shapes import Grid

MIN_FINDING_ML = 0.2
"""Smallest finding volume (mL) that is reported and labelled; nodules are always kept."""


@dataclass(frozen=True)
class Positioning:
    """Where the patient lies in the scanner for one study (mm).

    DICOM x = anatomical x + ``shift_x`` (same for y); DICOM z = anatomical z + ``table_z``.
    The scan covers ``n_slices`` contiguous slices whose first centre is at anatomical
    ``z_start``.
    """

    shift_x: float
    shift_y: float
    table_z: float
    z_start: float
    n_slices: int


@dataclass(frozen=True)
class Series:
    """A rendered axial series, slices ordered by ascending z.

    Parameters
    ----------
    hu : numpy.ndarray
        int32 (D, H, W) stored HU.
    masks : dict[str, numpy.ndarray]
        bool (D, H, W) per finding kind with a non-empty mask.
    lung : numpy.ndarray
        bool (D, H, W) lung region (at least half-covered voxels).
    grid : Grid
        Voxel centres in anatomical mm.
    position : tuple[float, float]
        DICOM (x, y) of the first voxel centre (ImagePositionPatient x, y).
    z_positions : numpy.ndarray
        (D,) DICOM z of each slice (ImagePositionPatient z).
    pixel_mm, thickness_mm : float
        In-plane spacing and slice thickness (= spacing).
    """

    hu: np.ndarray
    masks: dict[str, np.ndarray]
    lung: np.ndarray
    grid: Grid
    position: tuple[float, float]
    z_positions: np.ndarray
    pixel_mm: float
    thickness_mm: float


def plan_positioning(anat: Anatomy, profile: SiteProfile, rng: np.random.Generator) -> Positioning:
    """Scout-based scan range: from below the costophrenic recesses to above the apices.

    The range is kept within 255-320 mm, i.e. 26-64 slices at 5-10 mm.
    """
    thk = profile.slice_thickness_mm
    z_lo = min(anat.base_r, anat.base_l) - anat.tilt - rng.uniform(15.0, 35.0)
    z_hi = anat.apex + rng.uniform(10.0, 30.0)
    n = int(np.clip(round((z_hi - z_lo) / thk), math.ceil(255.0 / thk), math.floor(320.0 / thk)))
    z_start = z_lo + ((z_hi - z_lo) - (n - 1) * thk) / 2.0
    return Positioning(
        shift_x=float(rng.uniform(-8.0, 8.0)),
        shift_y=float(rng.uniform(-10.0, 10.0)),
        table_z=float(np.round(rng.uniform(-420.0, -180.0) * 2.0) / 2.0),
        z_start=float(np.round(z_start * 2.0) / 2.0),
        n_slices=n,
    )


def render_series(
    anat: Anatomy, lesions: list[Lesion], profile: SiteProfile, pos: Positioning, *,
    matrix: int, rng: np.random.Generator,
) -> Series:
    """Draw anatomy and lesions on a slice-supersampled grid, then acquire with the scanner."""
    thk = profile.slice_thickness_mm
    px = profile.fov_mm / matrix
    n_sub = max(2, round(thk / 2.5))
    centers = -profile.fov_mm / 2.0 + (np.arange(matrix) + 0.5) * px  # DICOM x and y
    z_slices = pos.z_start + thk * np.arange(pos.n_slices)
    z_fine = (z_slices[:, None] + ((np.arange(n_sub) + 0.5) / n_sub - 0.5) * thk).ravel()
    fine = Grid(x=centers - pos.shift_x, y=centers - pos.shift_y, z=z_fine)

    hu_fine, lung_fine = draw_anatomy(anat, fine)
    masks_fine = draw_lesions(anat, fine, hu_fine, lung_fine, lesions)

    lung_frac = average_slices(lung_fine.astype(np.float32), n_sub)
    hu = acquire(average_slices(hu_fine, n_sub), lung_frac, profile, px, rng)
    masks = {}
    voxel_ml = px * px * thk / 1000.0
    taken = np.zeros(z_slices.shape + (matrix, matrix), dtype=bool)
    for kind in reversed(DRAW_ORDER):  # keep the masks exclusive: later-drawn findings win
        if kind not in masks_fine:
            continue
        series_mask = partial_volume_mask(masks_fine[kind], n_sub) & ~taken
        taken |= series_mask
        # sub-threshold specks (a lesion almost entirely overdrawn by another) go unreported
        if series_mask.sum() * voxel_ml >= MIN_FINDING_ML or (kind == "nodule" and series_mask.any()):
            masks[kind] = series_mask
    grid = Grid(x=fine.x, y=fine.y, z=z_slices)
    return Series(
        hu=hu, masks=masks, lung=lung_frac >= 0.5, grid=grid,
        position=(float(centers[0]), float(centers[0])),
        z_positions=z_slices + pos.table_z, pixel_mm=px, thickness_mm=thk,
    )
