"""Analytic adult chest anatomy: per-patient parameters, lung and lobe geometry.

Anatomical z = 0 lies near the lung bases (the posterior costophrenic recesses reach about
-20 mm) and x = 0 at the midline; the scanner adds table position and patient shift on top. Shape
functions take broadcastable coordinate arrays, so the same formula decides lung membership
of a voxel grid and of a handful of candidate lesion centres.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from .shapes import Point

LOBES: tuple[str, ...] = (
    "right upper lobe",
    "right middle lobe",
    "right lower lobe",
    "left upper lobe",
    "left lower lobe",
)
"""Lobe names, indexed by the codes :func:`lobe_of` returns (0-2 right, 3-4 left)."""

Vessel = tuple[Point, Point, float, float]


@dataclass(frozen=True)
class Anatomy:
    """Per-patient anatomical parameters (all lengths in mm).

    ``body_*``/``cav_*`` are the axial ellipses of the skin and of the inner chest wall,
    ``lung_*`` the full-size axial ellipse of each lung, ``base_r``/``base_l`` the level of
    each diaphragm at its periphery, ``dome_h`` its dome height, ``tilt`` how much lower it
    lies posteriorly, ``apex`` the level of the lung apices.
    """

    body_ax: float
    body_ay: float
    body_cy: float
    fat_mm: float
    cav_ax: float
    cav_ay: float
    cav_cy: float
    lung_ax: float
    lung_ay: float
    lung_cx: float
    lung_cy: float
    base_r: float
    base_l: float
    dome_h: float
    tilt: float
    apex: float
    widest_frac: float
    heart_c: Point
    heart_r: Point
    carina_z: float
    trachea_y: float
    spine_y: float
    rib_pitch: float
    rib_drop: float
    rib_z0: float
    oblique_frac: float
    oblique_slope: float
    minor_frac: float
    female: bool
    breast_r: float
    gastric_bubble: bool
    cardiomegaly: bool
    vessels: tuple[Vessel, ...]

    def base(self, right: bool) -> float:
        """Diaphragm level of the right (True) or left (False) hemithorax."""
        return self.base_r if right else self.base_l

    def hilum(self, right: bool) -> Point:
        """Approximate hilar point of one lung."""
        s = -1.0 if right else 1.0
        return (s * 0.55 * self.lung_cx, self.lung_cy - 0.1 * self.lung_ay, self.carina_z - 25.0)


def diaphragm_z(anat: Anatomy, x: np.ndarray, y: np.ndarray, right: bool) -> np.ndarray:
    """z of the diaphragm surface under (x, y): a dome, lower at the periphery and posteriorly."""
    s = -1.0 if right else 1.0
    xn = (x - s * anat.lung_cx) / anat.lung_ax
    yn = (y - anat.lung_cy) / anat.lung_ay
    rr = np.minimum(xn * xn + yn * yn, 1.0)
    return anat.base(right) + anat.tilt + anat.dome_h * (1.0 - rr) - anat.tilt * (1.0 + yn)


def lung_mask(
    anat: Anatomy, x: np.ndarray, y: np.ndarray, z: np.ndarray, *, right: bool
) -> np.ndarray:
    """Whether points (broadcastable arrays, mm) lie inside the right or left lung envelope."""
    s = -1.0 if right else 1.0
    xn = (x - s * anat.lung_cx) / anat.lung_ax
    yn = (y - anat.lung_cy) / anat.lung_ay
    rr = xn * xn + yn * yn
    base = anat.base(right)
    z_wide = base + anat.widest_frac * (anat.apex - base)
    t = np.clip((z - z_wide) / (anat.apex - z_wide), 0.0, 1.0)
    cav = (x / anat.cav_ax) ** 2 + ((y - anat.cav_cy) / anat.cav_ay) ** 2
    inside = (rr < 1.0 - t * t) & (cav < 1.0) & (z < anat.apex)
    return inside & (z > diaphragm_z(anat, x, y, right))


def lobe_of(anat: Anatomy, x: npt.ArrayLike, y: npt.ArrayLike, z: npt.ArrayLike) -> np.ndarray:
    """Lobe code (index into :data:`LOBES`) of points assumed to lie in a lung.

    The oblique fissure is a plane rising posteriorly; the right minor fissure is horizontal.
    """
    x, y, z = np.broadcast_arrays(np.asarray(x), np.asarray(y), np.asarray(z))
    right = x < 0
    base = np.where(right, anat.base_r, anat.base_l)
    height = anat.apex - base
    lower = z < base + anat.oblique_frac * height + anat.oblique_slope * (y - anat.lung_cy)
    upper_r = np.where(z < base + anat.minor_frac * height, 1, 0)
    return np.where(right, np.where(lower, 2, upper_r), np.where(lower, 4, 3)).astype(np.int8)


def sample_lung_points(
    anat: Anatomy, rng: np.random.Generator, n: int, *, right: bool, margin: float = 0.0
) -> np.ndarray:
    """``n`` points (n, 3) uniformly inside one lung, at least ``margin`` mm from its border.

    The margin is checked at 14 points on a sphere around each candidate.
    """
    s = -1.0 if right else 1.0
    lo = np.array([s * anat.lung_cx - anat.lung_ax, anat.lung_cy - anat.lung_ay,
                   anat.base(right) - anat.tilt])
    hi = np.array([s * anat.lung_cx + anat.lung_ax, anat.lung_cy + anat.lung_ay, anat.apex])
    offsets = np.vstack([np.zeros(3), np.eye(3), -np.eye(3), np.array(
        [[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)]) / np.sqrt(3)])
    found: list[np.ndarray] = []
    for _ in range(200):
        cand = rng.uniform(lo, hi, size=(256, 3))
        pts = cand[:, None, :] + margin * offsets[None, :, :]  # (256, 15, 3)
        ok = lung_mask(anat, pts[..., 0], pts[..., 1], pts[..., 2], right=right).all(axis=1)
        found.extend(cand[ok])
        if len(found) >= n:
            return np.asarray(found[:n])
    raise RuntimeError(f"could not place {n} points {margin} mm inside the lung")


def sample_anatomy(
    rng: np.random.Generator, *, female: bool, fov_mm: float, hyperinflated: bool,
    cardiomegaly: bool,
) -> Anatomy:
    """Draw one patient's anatomy.

    ``hyperinflated`` (emphysema) gives bigger lungs with flattened diaphragms,
    ``cardiomegaly`` (heart failure) an enlarged heart.
    """
    u = rng.uniform
    body_ax = min(u(132.0, 168.0) * (0.94 if female else 1.0), 0.46 * fov_mm)
    body_ay = min(u(100.0, 124.0), 0.40 * fov_mm)
    fat = u(8.0, 22.0) * (1.15 if female else 1.0)
    t_ant, t_post, t_lat = fat + u(12.0, 18.0), fat + 26.0, fat + u(8.0, 12.0)
    body_cy = u(-8.0, 8.0)
    cav_ay = body_ay - (t_ant + t_post) / 2.0
    cav_cy = body_cy + (t_ant - t_post) / 2.0
    cav_ax = body_ax - t_lat
    infl = 1.06 if hyperinflated else 1.0
    lung_ax = (0.5 * cav_ax - u(7.0, 11.0)) * min(infl, 1.03)
    lung_cx = cav_ax - lung_ax - u(1.0, 4.0)
    apex = u(225.0, 255.0) * infl * (0.95 if female else 1.0)
    base_l = u(0.0, 8.0)
    dome_h = u(28.0, 42.0) * (0.45 if hyperinflated else 1.0)
    carina_z = base_l + u(0.58, 0.66) * (apex - base_l)
    spine_y = cav_cy + cav_ay - 20.0  # the vertebral body bulges into the cavity
    heart = u(1.18, 1.3) if cardiomegaly else 1.0
    heart_c = (u(10.0, 22.0), cav_cy - 0.28 * cav_ay, base_l + dome_h + u(28.0, 40.0))
    anat = Anatomy(
        body_ax=body_ax, body_ay=body_ay, body_cy=body_cy, fat_mm=fat, cav_ax=cav_ax,
        cav_ay=cav_ay, cav_cy=cav_cy, lung_ax=lung_ax, lung_ay=cav_ay - u(3.0, 8.0),
        lung_cx=lung_cx, lung_cy=cav_cy + u(2.0, 6.0), base_r=base_l + u(10.0, 22.0),
        base_l=base_l, dome_h=dome_h, tilt=u(14.0, 24.0), apex=apex, widest_frac=u(0.25, 0.4),
        heart_c=heart_c, heart_r=(u(52.0, 64.0) * heart, 0.5 * cav_ay * heart, u(45.0, 55.0) * heart),
        carina_z=carina_z, trachea_y=spine_y - u(40.0, 48.0), spine_y=spine_y,
        rib_pitch=(apex + 70.0) / 12.0, rib_drop=u(55.0, 80.0), rib_z0=-60.0 + u(-5.0, 5.0),
        oblique_frac=u(0.4, 0.5), oblique_slope=u(0.9, 1.2), minor_frac=u(0.52, 0.6),
        female=female, breast_r=u(12.0, 30.0) if female else 0.0,
        gastric_bubble=bool(rng.random() < 0.6), cardiomegaly=cardiomegaly, vessels=(),
    )
    vessels: list[Vessel] = []
    for right in (True, False):
        hil = np.asarray(anat.hilum(right))
        for target in sample_lung_points(anat, rng, 14, right=right, margin=6.0):
            mid = hil + 0.45 * (target - hil) + rng.normal(0.0, 5.0, 3)
            vessels.append((_pt(hil), _pt(mid), 4.2, 3.0))
            vessels.append((_pt(mid), _pt(target), 3.0, 1.2))
    return replace(anat, vessels=tuple(vessels))


def _pt(v: np.ndarray) -> Point:
    return (float(v[0]), float(v[1]), float(v[2]))
