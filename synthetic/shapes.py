"""Voxel grid in patient millimetres and the vectorized primitives the phantom is drawn with.

Coordinates are DICOM patient coordinates (LPS) relative to the patient's own anatomy:
x grows to the patient's left, y to posterior, z to the head. A :class:`Grid` holds the
1-D, ascending coordinates of its voxel centres, so a volume is indexed ``[z, y, x]``,
i.e. (slices feet to head, rows anterior to posterior, cols patient right to left).
Primitives work on the bounding box of the shape only and return ``(slices, mask)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Box = tuple[slice, slice, slice]
Point = tuple[float, float, float]


@dataclass(frozen=True)
class Grid:
    """Voxel centres of a volume, in mm, each axis ascending.

    Parameters
    ----------
    x : numpy.ndarray
        (W,) column centres (patient right -> left).
    y : numpy.ndarray
        (H,) row centres (anterior -> posterior).
    z : numpy.ndarray
        (D,) slice centres (feet -> head).
    """

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """(D, H, W)."""
        return (len(self.z), len(self.y), len(self.x))

    def mesh(self, box: Box | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable (Z, Y, X) coordinate arrays of shape (d,1,1), (1,h,1), (1,1,w)."""
        bz, by, bx = box if box is not None else (slice(None),) * 3
        return (
            self.z[bz][:, None, None].astype(np.float32),
            self.y[by][None, :, None].astype(np.float32),
            self.x[bx][None, None, :].astype(np.float32),
        )

    def box(self, lo: npt.ArrayLike, hi: npt.ArrayLike) -> Box | None:
        """Index box of the voxels whose centres lie in [lo, hi] (x, y, z order), or None."""
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        out = []
        for axis, a, b in ((self.z, lo[2], hi[2]), (self.y, lo[1], hi[1]), (self.x, lo[0], hi[0])):
            i0, i1 = int(np.searchsorted(axis, a, "left")), int(np.searchsorted(axis, b, "right"))
            if i1 <= i0:
                return None
            out.append(slice(i0, i1))
        return (out[0], out[1], out[2])


def ellipsoid(grid: Grid, center: Point, radii: Point) -> tuple[Box, np.ndarray] | None:
    """Axis-aligned solid ellipsoid; ``None`` when it misses the grid."""
    c, r = np.asarray(center, float), np.asarray(radii, float)
    box = grid.box(c - r, c + r)
    if box is None:
        return None
    z, y, x = grid.mesh(box)
    q = ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2
    return box, q <= 1.0


def sphere(grid: Grid, center: Point, radius: float) -> tuple[Box, np.ndarray] | None:
    """Solid sphere; ``None`` when it misses the grid."""
    return ellipsoid(grid, center, (radius, radius, radius))


def spheres(grid: Grid, centers: np.ndarray, radii: np.ndarray) -> list[tuple[Box, np.ndarray]]:
    """Many small solid spheres at once (bounding boxes found in one vectorized pass).

    Parameters
    ----------
    centers : numpy.ndarray
        (N, 3) centres, x, y, z in mm.
    radii : numpy.ndarray
        (N,) radii in mm.
    """
    if len(centers) == 0:
        return []
    c, r = np.asarray(centers, float), np.asarray(radii, float)
    lo = [np.searchsorted(a, c[:, k] - r, "left") for k, a in ((2, grid.z), (1, grid.y), (0, grid.x))]
    hi = [np.searchsorted(a, c[:, k] + r, "right") for k, a in ((2, grid.z), (1, grid.y), (0, grid.x))]
    out = []
    for i in range(len(c)):
        if any(hi[k][i] <= lo[k][i] for k in range(3)):
            continue
        box = (slice(lo[0][i], hi[0][i]), slice(lo[1][i], hi[1][i]), slice(lo[2][i], hi[2][i]))
        z, y, x = grid.mesh(box)
        out.append((box, (x - c[i, 0]) ** 2 + (y - c[i, 1]) ** 2 + (z - c[i, 2]) ** 2 <= r[i] ** 2))
    return out


def tube(
    grid: Grid, p0: Point, p1: Point, radius: float, radius1: float | None = None
) -> tuple[Box, np.ndarray] | None:
    """Capsule around the segment p0-p1, radius tapering linearly to ``radius1``."""
    a, b = np.asarray(p0, float), np.asarray(p1, float)
    r1 = radius if radius1 is None else radius1
    rmax = max(radius, r1)
    box = grid.box(np.minimum(a, b) - rmax, np.maximum(a, b) + rmax)
    if box is None:
        return None
    z, y, x = grid.mesh(box)
    v = b - a
    vv = max(float(v @ v), 1e-9)
    wx, wy, wz = x - a[0], y - a[1], z - a[2]
    t = np.clip((wx * v[0] + wy * v[1] + wz * v[2]) / vv, 0.0, 1.0)
    d2 = (wx - t * v[0]) ** 2 + (wy - t * v[1]) ** 2 + (wz - t * v[2]) ** 2
    r = radius + (r1 - radius) * t
    return box, d2 <= r * r


def paint(
    volume: np.ndarray, shape: tuple[Box, np.ndarray] | None, value: float,
    where: np.ndarray | None = None,
) -> None:
    """Set ``volume`` to ``value`` inside a primitive (and inside ``where``, same shape as volume)."""
    if shape is None:
        return
    box, mask = shape
    if where is not None:
        mask = mask & where[box]
    volume[box][mask] = value


def to_mask(grid: Grid, shape: tuple[Box, np.ndarray] | None) -> np.ndarray:
    """Full-grid boolean mask of a primitive."""
    out = np.zeros(grid.shape, dtype=bool)
    if shape is not None:
        box, mask = shape
        out[box] = mask
    return out


def ellipse2d(
    grid: Grid, cx: float, cy: float, ax: float, ay: float
) -> np.ndarray:
    """(H, W) normalized squared radius ((x-cx)/ax)^2 + ((y-cy)/ay)^2 of an axial ellipse."""
    return ((grid.x[None, :] - cx) / ax) ** 2 + ((grid.y[:, None] - cy) / ay) ** 2
