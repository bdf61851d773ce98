"""Pulmonary findings: patient-level specifications in anatomical mm, and their rendering.

A specification is drawn once per patient, so a follow-up study shows the same lesion at
the same anatomical place (possibly grown or shrunk); rendering turns it into HU changes
and a voxel mask on any grid. Masks are mutually exclusive: a later finding in
:data:`DRAW_ORDER` takes the voxels it covers away from earlier ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import Anatomy, lobe_of, sample_lung_points
from .shapes import Grid, Point, ellipsoid, sphere, spheres, tube

DRAW_ORDER: tuple[str, ...] = (
    "emphysema",
    "ground_glass_opacity",
    "consolidation",
    "nodule",
    "pleural_effusion",
)


_DIRECTIONS = np.vstack([np.eye(3), -np.eye(3), np.array(
    [[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)]) / np.sqrt(3.0)])


@dataclass(frozen=True)
class Nodule:
    """Solid spherical nodule of ``radius`` mm centred at ``center``."""

    center: Point
    radius: float
    kind: str = "nodule"


@dataclass(frozen=True)
class Consolidation:
    """Airspace consolidation confined to ``lobe``, irregular ball around ``seed``."""

    seed: Point
    radius: float
    lobe: int
    harmonics: tuple[float, float, float, float]
    bronchograms: tuple[tuple[Point, Point], ...]
    kind: str = "consolidation"


@dataclass(frozen=True)
class GroundGlass:
    """Patchy ground-glass opacity: union of ellipsoidal blobs (centre, radii, peak HU)."""

    blobs: tuple[tuple[Point, Point, float], ...]
    pattern: str  # "infective" | "edema" | "perilesional"
    kind: str = "ground_glass_opacity"


@dataclass(frozen=True)
class Emphysema:
    """Low-attenuation areas: centrilobular holes and bullae (centre, radius)."""

    holes: tuple[tuple[Point, float], ...]
    kind: str = "emphysema"


@dataclass(frozen=True)
class Effusion:
    """Dependent pleural fluid at one or both bases, ``height`` mm above the lowest recess."""

    right: bool
    left: bool
    height: float
    depth: float
    kind: str = "pleural_effusion"


Lesion = Nodule | Consolidation | GroundGlass | Emphysema | Effusion


def sample_nodule(
    anat: Anatomy, rng: np.random.Generator, *, avoid: list[tuple[Point, float]], z_min: float
) -> Nodule:
    """Nodule of radius 5-14 mm (diameter < 30 mm), upper lobes favoured, clear of ``avoid``."""
    radius = float(rng.uniform(5.0, 14.0))
    weights = np.array([2.2, 0.7, 1.0, 2.0, 1.0])
    for _ in range(50):
        right = bool(rng.random() < 0.55)
        pts = sample_lung_points(anat, rng, 32, right=right, margin=radius + 2.0)
        lobes = lobe_of(anat, pts[:, 0], pts[:, 1], pts[:, 2])
        # a nodule does not cross a fissure: its whole extent must lie in one lobe
        shell = pts[:, None, :] + (radius + 1.0) * _DIRECTIONS[None, :, :]
        one_lobe = (lobe_of(anat, shell[..., 0], shell[..., 1], shell[..., 2]) == lobes[:, None]).all(axis=1)
        keep = one_lobe & (rng.random(len(pts)) < weights[lobes] / weights.max())
        for p in pts[keep]:
            far = all(np.linalg.norm(p - np.asarray(c)) > r + radius + 8.0 for c, r in avoid)
            if far and p[2] - radius > z_min:
                return Nodule(center=_pt(p), radius=radius)
    raise RuntimeError("could not place a nodule")


def sample_consolidation(anat: Anatomy, rng: np.random.Generator) -> Consolidation:
    """Lobar/segmental consolidation, lower lobes favoured, with air bronchograms."""
    weights = np.array([0.8, 0.6, 1.6, 0.7, 1.5])
    radius = float(rng.uniform(28.0, 55.0))
    for _ in range(200):
        p = sample_lung_points(anat, rng, 1, right=bool(rng.random() < 0.55), margin=14.0)[0]
        lobe = int(lobe_of(anat, p[0], p[1], p[2]))
        # keep seeds well inside their lobe, so the consolidation is not a sliver at a fissure
        shell = p[None, :] + 0.4 * radius * _DIRECTIONS
        inside = lobe_of(anat, shell[:, 0], shell[:, 1], shell[:, 2]) == lobe
        if inside.mean() >= 0.7 and rng.random() < weights[lobe] / weights.max():
            break
    hil = np.asarray(anat.hilum(lobe < 3))
    towards = (hil - p) / max(float(np.linalg.norm(hil - p)), 1e-6)
    start = p + 0.6 * radius * towards
    grams = []
    for _ in range(int(rng.integers(2, 5))):
        d = rng.normal(size=3) - towards
        grams.append((_pt(start), _pt(p + 0.8 * radius * d / np.linalg.norm(d))))
    harm = rng.uniform(-0.22, 0.22, 2).tolist() + rng.uniform(0.0, 2 * np.pi, 2).tolist()
    return Consolidation(_pt(p), radius, lobe, (harm[0], harm[1], harm[2], harm[3]), tuple(grams))


def sample_ground_glass(
    anat: Anatomy, rng: np.random.Generator, *, pattern: str, near: Point | None = None
) -> GroundGlass:
    """GGO blobs: "infective" (bilateral, peripheral, basal), "edema" (perihilar) or
    "perilesional" (halo around ``near``)."""
    blobs: list[tuple[Point, Point, float]] = []
    n = {"infective": rng.integers(4, 10), "edema": rng.integers(4, 8)}.get(pattern, 2)
    while len(blobs) < n:
        right = bool(rng.random() < 0.5)
        p = sample_lung_points(anat, rng, 1, right=right, margin=4.0)[0]
        s = -1.0 if right else 1.0
        rr = ((p[0] - s * anat.lung_cx) / anat.lung_ax) ** 2 + ((p[1] - anat.lung_cy) / anat.lung_ay) ** 2
        if pattern == "infective" and (rr < 0.45 or rng.random() < (p[2] - anat.base(right)) / 250.0):
            continue
        if pattern == "edema" and np.linalg.norm(p - np.asarray(anat.hilum(right))) > 75.0:
            continue
        if pattern == "perilesional":
            if near is None:
                raise ValueError("perilesional ground glass needs the lesion it surrounds")
            p = np.asarray(near) + rng.normal(0.0, 12.0, 3)
        radii = (float(rng.uniform(14, 34)), float(rng.uniform(14, 34)), float(rng.uniform(12, 30)))
        blobs.append((_pt(p), radii, float(rng.uniform(-620.0, -480.0))))
    return GroundGlass(tuple(blobs), pattern)


def sample_emphysema(anat: Anatomy, rng: np.random.Generator, *, severity: float) -> Emphysema:
    """Upper-lobe predominant centrilobular holes; ``severity`` in [0, 1] scales their number."""
    holes: list[tuple[Point, float]] = []
    n = int(80 + 520 * severity)
    for right in (True, False):
        pts = sample_lung_points(anat, rng, 4 * n, right=right, margin=2.0)
        base = anat.base(right)
        w = np.clip((pts[:, 2] - base) / (anat.apex - base), 0.0, 1.0) ** 2
        pts = pts[rng.random(len(pts)) < w][: n // 2 + 1]
        holes += [(_pt(p), float(r)) for p, r in zip(pts, rng.uniform(3.5, 8.5, len(pts)), strict=True)]
    for _ in range(int(rng.integers(0, 3))):  # paraseptal bullae near the apices
        right = bool(rng.random() < 0.5)
        p = sample_lung_points(anat, rng, 1, right=right, margin=10.0)[0]
        if p[2] > anat.apex - 80.0:
            holes.append((_pt(p), float(rng.uniform(10.0, 18.0))))
    return Emphysema(tuple(holes))


def sample_effusion(anat: Anatomy, rng: np.random.Generator, *, right: bool, left: bool) -> Effusion:
    """Dependent effusion 45-120 mm high at the given side(s)."""
    return Effusion(right, left, float(rng.uniform(45.0, 120.0)), float(rng.uniform(0.45, 0.9)))


def effusion_top(anat: Anatomy, eff: Effusion) -> float:
    """Highest z an effusion can reach (nodules are kept above it)."""
    return max(anat.base_r, anat.base_l) + eff.height


def draw_lesions(
    anat: Anatomy, grid: Grid, hu: np.ndarray, lung: np.ndarray, lesions: list[Lesion]
) -> dict[str, np.ndarray]:
    """Paint ``lesions`` into ``hu`` (in place) and return one full-grid bool mask per kind."""
    masks: dict[str, np.ndarray] = {}
    for kind in DRAW_ORDER:
        for lesion in (les for les in lesions if les.kind == kind):
            mask = _draw_one(anat, grid, hu, lung, lesion)
            for other in masks.values():
                other &= ~mask
            masks[kind] = masks[kind] | mask if kind in masks else mask
    return masks


def _draw_one(anat: Anatomy, grid: Grid, hu: np.ndarray, lung: np.ndarray, les: Lesion) -> np.ndarray:
    out = np.zeros(grid.shape, dtype=bool)
    if isinstance(les, Emphysema):
        centers = np.array([c for c, _ in les.holes]).reshape(-1, 3)
        for box, m in spheres(grid, centers, np.array([r for _, r in les.holes])):
            out[box] |= m & lung[box]
        hu[out] = -985.0
    elif isinstance(les, GroundGlass):
        for c, radii, peak in les.blobs:
            shp = ellipsoid(grid, c, radii)
            if shp is None:
                continue
            box, m = shp
            m = m & lung[box]
            z, y, x = grid.mesh(box)
            q = ((x - c[0]) / radii[0]) ** 2 + ((y - c[1]) / radii[1]) ** 2 + ((z - c[2]) / radii[2]) ** 2
            sub = hu[box]  # max() keeps vessels visible through the ground glass
            sub[m] = np.maximum(sub, peak - 110.0 * q)[m]
            out[box] |= m
    elif isinstance(les, Consolidation):
        seed, reach = np.asarray(les.seed), 1.3 * les.radius
        cbox = grid.box(seed - reach, seed + reach)
        if cbox is not None:
            box = cbox
            z, y, x = grid.mesh(box)
            dx, dy, dz = x - seed[0], y - seed[1], z - seed[2]
            d = np.sqrt(dx * dx + dy * dy + dz * dz) + 1e-6
            a1, a2, p1, p2 = les.harmonics
            rad = les.radius * (1.0 + a1 * np.sin(3 * np.arctan2(dy, dx) + p1) + a2 * np.cos(2 * dz / d + p2))
            m = (d < rad) & lung[box] & (lobe_of(anat, x, y, z) == les.lobe)
            hu[box][m] = 32.0
            out[box] = m
            for p0, p1_ in les.bronchograms:
                shp = tube(grid, p0, p1_, 2.0, 1.2)
                if shp is not None:
                    hu[shp[0]][shp[1] & out[shp[0]]] = -900.0
    elif isinstance(les, Nodule):
        shp = sphere(grid, les.center, les.radius)
        if shp is not None:
            out[shp[0]] = shp[1] & lung[shp[0]]
        hu[out] = 40.0
    elif isinstance(les, Effusion):
        z, y, x = grid.mesh()
        sides = (x < 0) & les.right | (x >= 0) & les.left
        zlow = np.where(x < 0, anat.base_r, anat.base_l) - anat.tilt - 5.0
        v = (y - anat.lung_cy) / anat.lung_ay
        level = 1.0 - 2.0 * les.depth * np.clip(1.0 - (z - zlow) / les.height, 0.0, 1.0)
        out = lung & sides & (v > level) & (z < zlow + les.height)
        hu[out] = 10.0
    return out


def _pt(v: np.ndarray) -> Point:
    return (float(v[0]), float(v[1]), float(v[2]))
