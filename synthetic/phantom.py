"""Draw the chest anatomy of one patient into an HU volume (pure numpy, no scanner effects).

Tissue values follow typical unenhanced CT attenuation: air -1000, aerated lung about -860
(denser posteriorly), fat -100, muscle 45, heart 40, blood in the great vessels 50, liver
58, bone 500-700.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .anatomy import Anatomy, diaphragm_z, lung_mask
from .shapes import Box, Grid, Point, ellipse2d, ellipsoid, paint, tube

AIR, FAT, MEDIASTINAL_FAT, MUSCLE, HEART, BLOOD, LIVER = -1000.0, -100.0, -90.0, 45.0, 40.0, 50.0, 58.0
LUNG, VESSEL, BONE, VERTEBRA, DISC, CSF, STERNUM = -865.0, 40.0, 700.0, 650.0, 90.0, 15.0, 500.0
TABLE = 160.0


def draw_anatomy(anat: Anatomy, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Render the anatomy on ``grid``.

    Parameters
    ----------
    anat : Anatomy
        The patient's anatomical parameters.
    grid : Grid
        Voxel centres in anatomical mm.

    Returns
    -------
    hu : numpy.ndarray
        float32 (D, H, W) attenuation in HU.
    lung : numpy.ndarray
        bool (D, H, W) lung parenchyma (including intrapulmonary vessels and airways); the
        region findings are placed in.
    """
    z, y, x = grid.mesh()
    x2, y2 = x[0], y[0]  # (1, W), (H, 1)
    hu = np.full(grid.shape, AIR, dtype=np.float32)
    _draw_wall(anat, grid, hu)

    # cavity: mediastinal fat above the diaphragm, liver / upper abdomen below it
    cavity = ellipse2d(grid, 0.0, anat.cav_cy, anat.cav_ax, anat.cav_ay) < 1.0
    right2 = np.broadcast_to(x2 < 0, cavity.shape)
    dia = np.where(right2, diaphragm_z(anat, x2, y2, True), diaphragm_z(anat, x2, y2, False))
    below = z < dia[None]
    hu[:, cavity] = MEDIASTINAL_FAT
    abdomen = below & cavity[None]
    hu[abdomen] = np.where(np.broadcast_to(right2, hu.shape)[abdomen], LIVER, MUSCLE)
    if anat.gastric_bubble:
        c = (0.55 * anat.lung_cx, anat.lung_cy - 10.0, anat.base_l + anat.dome_h - 14.0)
        paint(hu, ellipsoid(grid, c, (26.0, 22.0, 10.0)), AIR, where=abdomen)

    lung = lung_mask(anat, x, y, z, right=True) | lung_mask(anat, x, y, z, right=False)
    yn = (y - anat.lung_cy) / anat.lung_ay  # gravity-dependent density gradient
    hu[lung] = np.broadcast_to(LUNG + 30.0 * yn, hu.shape)[lung]

    solid = np.zeros(grid.shape, dtype=bool)  # mediastinal structures carved out of the lungs
    for shape, value in _mediastinum(anat, grid):
        if shape is not None:
            box, m = shape
            hu[box][m] = value
            solid[box] |= m
    for p0, p1, r0, r1 in anat.vessels:  # pulmonary arteries and veins inside the lungs
        paint(hu, tube(grid, p0, p1, r0, r1), VESSEL, where=lung)
    for p0, p1, r in _lobar_bronchi(anat):
        paint(hu, tube(grid, p0, p1, r + 1.5), MUSCLE, where=lung)
        paint(hu, tube(grid, p0, p1, r), AIR, where=lung)
    _draw_spine_and_ribs(anat, grid, hu, solid)
    lung &= ~solid
    return hu, lung


def _draw_wall(anat: Anatomy, grid: Grid, hu: np.ndarray) -> None:
    """Skin/subcutaneous fat, chest wall muscle, breasts and the scanner table."""
    body = ellipse2d(grid, 0.0, anat.body_cy, anat.body_ax, anat.body_ay)
    muscle = ellipse2d(grid, 0.0, anat.body_cy, anat.body_ax - anat.fat_mm, anat.body_ay - anat.fat_mm)
    hu[:, body < 1.0] = FAT
    hu[:, muscle < 1.0] = MUSCLE
    if anat.female:
        for s in (-1.0, 1.0):
            c = (s * 0.42 * anat.body_ax, anat.body_cy - anat.body_ay + 10.0, anat.heart_c[2])
            paint(hu, ellipsoid(grid, c, (0.32 * anat.body_ax, anat.breast_r, 50.0)),
                  -60.0, where=np.broadcast_to(muscle >= 1.0, hu.shape))
    table_y = anat.body_cy + anat.body_ay + 2.0
    top = (grid.y >= table_y) & (grid.y < table_y + 8.0)
    hu[:, top, :] = np.where(np.abs(grid.x) < 200.0, TABLE, AIR)


def _mediastinum(anat: Anatomy, grid: Grid) -> list[tuple[tuple[Box, np.ndarray] | None, float]]:
    """Heart, great vessels, oesophagus, trachea and main bronchi as (shape, HU) in draw order."""
    hx, hy, hz = anat.heart_c
    cz, ty, sy = anat.carina_z, anat.trachea_y, anat.spine_y
    top = anat.apex + 80.0
    ax, ay = -16.0, hy - 8.0
    hil_r, hil_l = anat.hilum(True), anat.hilum(False)
    shapes = [
        (ellipsoid(grid, anat.heart_c, anat.heart_r), HEART),
        (tube(grid, (ax, ay, hz + 10.0), (ax, ay, cz + 12.0), 15.0), BLOOD),  # ascending aorta
        (tube(grid, (ax, ay, cz + 12.0), (2.0, ty, cz + 26.0), 13.0), BLOOD),  # arch
        (tube(grid, (2.0, ty, cz + 26.0), (22.0, sy - 30.0, cz + 12.0), 13.0), BLOOD),
        (tube(grid, (22.0, sy - 30.0, cz + 12.0), (20.0, sy - 28.0, -80.0), 12.0), BLOOD),
        (tube(grid, (12.0, hy - 12.0, hz + 35.0), (18.0, ty + 4.0, cz - 8.0), 13.0), BLOOD),
        (tube(grid, (18.0, ty + 4.0, cz - 8.0), hil_r, 10.0), BLOOD),  # right pulmonary artery
        (tube(grid, (18.0, ty + 4.0, cz - 8.0), hil_l, 10.0), BLOOD),
        (tube(grid, (-30.0, hy - 4.0, hz + 25.0), (-30.0, hy + 4.0, top), 10.0), BLOOD),  # SVC
        (tube(grid, (8.0, sy - 28.0, top), (12.0, sy - 28.0, -40.0), 8.0), MUSCLE),  # oesophagus
        (tube(grid, (0.0, ty, top), (0.0, ty, cz), 11.0), MUSCLE),  # trachea wall
        (tube(grid, (0.0, ty, cz), _main_bronchus_end(anat, True), 8.5), MUSCLE),
        (tube(grid, (0.0, ty, cz), _main_bronchus_end(anat, False), 8.0), MUSCLE),
        (tube(grid, (0.0, ty, top), (0.0, ty, cz), 9.0), AIR),  # trachea lumen
        (tube(grid, (0.0, ty, cz), _main_bronchus_end(anat, True), 7.0), AIR),
        (tube(grid, (0.0, ty, cz), _main_bronchus_end(anat, False), 6.5), AIR),
    ]
    return shapes


def _main_bronchus_end(anat: Anatomy, right: bool) -> Point:
    s = -1.0 if right else 1.0
    return (s * 0.5 * anat.lung_cx, anat.trachea_y + 12.0, anat.carina_z - (20.0 if right else 35.0))


def _lobar_bronchi(anat: Anatomy) -> list[tuple[Point, Point, float]]:
    """Lobar bronchi (inside the lungs) as (start, end, radius)."""
    r_end, l_end = _main_bronchus_end(anat, True), _main_bronchus_end(anat, False)
    cx, ty, cz = anat.lung_cx, anat.trachea_y, anat.carina_z
    return [
        (r_end, (-0.95 * cx, ty + 2.0, cz + 10.0), 4.0),  # right upper lobe
        (r_end, (-0.75 * cx, ty + 22.0, cz - 80.0), 5.0),  # intermedius -> right lower lobe
        (r_end, (-0.7 * cx, ty - 35.0, cz - 45.0), 3.5),  # right middle lobe
        (l_end, (0.95 * cx, ty - 5.0, cz - 10.0), 4.0),  # left upper lobe
        (l_end, (0.8 * cx, ty + 25.0, cz - 85.0), 4.5),  # left lower lobe
    ]


def _draw_spine_and_ribs(anat: Anatomy, grid: Grid, hu: np.ndarray, solid: np.ndarray) -> None:
    """Vertebral column with discs, posterior elements, ribs, sternum and scapulae."""
    x2, y2 = grid.x[None, :], grid.y[:, None]
    sy = anat.spine_y
    body = (x2**2 + (y2 - sy) ** 2) < 17.0**2
    disc = ((grid.z - anat.rib_z0) % 27.0) < 6.0
    canal_r2 = x2**2 + (y2 - sy - 27.0) ** 2
    arch = (canal_r2 < 13.0**2) & (canal_r2 >= 8.0**2) & (y2 > sy + 18.0)
    spinous = (np.abs(x2) < 5.0) & (y2 > sy + 33.0) & (y2 < sy + 52.0)
    transverse = (np.abs(y2 - sy - 24.0) < 5.0) & (np.abs(x2) > 10.0) & (np.abs(x2) < 32.0)
    hu[:, body] = VERTEBRA
    hu[disc[:, None, None] & body[None]] = DISC
    hu[:, canal_r2 < 8.0**2] = CSF
    hu[:, arch | spinous | transverse] = BONE
    solid[:, body | (canal_r2 < 13.0**2) | spinous | transverse] = True

    # ribs: a band just outside the inner chest wall, sloping down anteriorly
    rn = np.sqrt(ellipse2d(grid, 0.0, anat.cav_cy, anat.cav_ax, anat.cav_ay))
    depth = np.hypot(x2, y2 - anat.cav_cy) * (1.0 - 1.0 / np.maximum(rn, 1e-6))  # mm outside
    phi = np.abs(np.arctan2(x2, y2 - anat.cav_cy)) / np.pi  # 0 posterior, 1 anterior
    band = (depth > 1.0) & (depth < 10.0) & (phi > 0.12) & (phi < 0.8)
    _paint_columns(hu, band, lambda col: _rib_rows(anat, grid.z, phi[band][None, :]), BONE)
    scap = (depth > 28.0) & (depth < 36.0) & (phi > 0.18) & (phi < 0.42)
    scap_z = (grid.z > anat.carina_z - 50.0) & (grid.z < anat.apex + 15.0)
    _paint_columns(hu, scap, lambda col: scap_z[:, None] & (col > -200.0), BONE)  # inside body
    st = ((x2 / 16.0) ** 2 + ((y2 - anat.cav_cy + anat.cav_ay + 6.0) / 7.0) ** 2) < 1.0
    st_z = (grid.z > anat.heart_c[2] - 25.0) & (grid.z < anat.carina_z + 50.0)
    _paint_columns(hu, st, lambda col: np.broadcast_to(st_z[:, None], col.shape), STERNUM)


def _rib_rows(anat: Anatomy, z: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Which (slice, pixel) pairs hit one of the 12 ribs, which slope down anteriorly."""
    zr = z[:, None] - anat.rib_z0 + anat.rib_drop * phi
    return ((zr % anat.rib_pitch) < 9.0) & (zr >= 0.0) & (zr < 12.0 * anat.rib_pitch)


def _paint_columns(
    hu: np.ndarray, pixels: np.ndarray, select: Callable[[np.ndarray], np.ndarray],
    value: float,
) -> None:
    """Paint ``value`` where ``select(columns)`` holds, on the (D, n) columns of ``pixels``.

    Working on the few columns of a 2-D pixel mask avoids full-volume temporaries.
    """
    rows, cols = np.nonzero(pixels)
    col = hu[:, rows, cols]  # (D, n) copy
    col[select(col)] = value
    hu[:, rows, cols] = col
