"""Group slices into series, order them along the slice normal, check geometry, build HU volumes.

Slices are ordered by ``dot(ImagePositionPatient, cross(row, col))`` -- never by InstanceNumber,
which PACS exports do not keep consistent -- and a series is used only if its slice spacing is
uniform (no missing slice, no duplicate position) and its slices lie on one straight line.

Gantry tilt (slice positions advancing along the table, not along the slice normal) is kept in
the series affine as a shear; :func:`preprocess.preprocess_volume` then resamples onto an
orthogonal grid, which undoes the tilt. Tilts up to :data:`MAX_TILT_DEG` are accepted and noted.
Coronal, sagittal and strongly oblique series are usable too (the same resampling brings them to
the axial layout) but a study's axial series always win (:func:`selection_key`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from client_site.ingestion.errors import FileRejected, RejectCode, SeriesRejected
from client_site.ingestion.pixels import VolumeScratch, read_hu_frames
from client_site.ingestion.slices import SliceHeader

logger = logging.getLogger(__name__)

MIN_SLICES = 3  # fewer cannot show that the spacing is uniform
MAX_SERIES_VOXELS = 1 << 29  # 2 GiB as float32; larger series are refused before reading pixels
AXIAL_MIN_COS = 0.9  # |slice normal . z| at least this (<= ~26 degrees off) counts as axial
MAX_TILT_DEG = 30.0  # gantry tilt (normal vs stacking direction) resampled up to this angle
_TILT_NOTE_DEG = 0.5  # smaller angles are rounding noise in ImagePositionPatient
_DUPLICATE_MM = 0.01  # two slices closer than this share a position
_SPACING_REL_TOL = 0.05  # relative deviation allowed between consecutive gaps


@dataclass(frozen=True)
class OrderedSeries:
    """A geometry-checked series, slices sorted by ascending position along the slice normal.

    Attributes
    ----------
    slices : tuple[SliceHeader, ...]
        Slices in ascending order along ``cross(row, col)`` (feet to head for axial images).
    slice_spacing : float
        Distance between consecutive slices along the normal, in mm.
    affine : np.ndarray
        (4, 4) voxel-to-patient (DICOM LPS, mm) matrix for the array (slice, row, col).
    plane : str
        ``axial``, ``coronal`` or ``sagittal`` (the patient axis closest to the slice normal).
    tilt_deg : float
        Angle between the slice normal and the direction the slices are stacked in (gantry tilt);
        0 when below 0.5 degrees.
    """

    slices: tuple[SliceHeader, ...]
    slice_spacing: float
    affine: np.ndarray
    plane: str = "axial"
    tilt_deg: float = 0.0

    @property
    def series_key(self) -> str:
        """Salted key of the SeriesInstanceUID."""
        return self.slices[0].series_key

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """(z, y, x) voxel spacing in mm: slice spacing, then PixelSpacing (rows, columns)."""
        first = self.slices[0]
        return (self.slice_spacing, first.pixel_spacing[0], first.pixel_spacing[1])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, rows, columns) of the native voxel grid."""
        first = self.slices[0]
        return (len(self.slices), first.rows, first.columns)

    @property
    def native_geometry(self) -> dict[str, list[int] | list[list[float]]]:
        """JSON form of the native grid for ``cache/index.json``: ``{"affine": 4x4, "shape": [z, y, x]}``.

        Positions in mm are not identifying; evaluation uses them to bring native-grid ground-truth
        masks onto the cache grid (:func:`preprocess.preprocess_mask`).
        """
        return {"affine": [[round(float(v), 6) for v in row] for row in self.affine],
                "shape": [int(n) for n in self.shape]}

    @property
    def thickness_mm(self) -> float | None:
        """SliceThickness of the first slice that gives one, else None."""
        return next((s.thickness for s in self.slices if s.thickness), None)


def group_by_series(headers: Iterable[SliceHeader]) -> tuple[dict[str, list[SliceHeader]], dict[str, FileRejected]]:
    """Group slice headers by series key, dropping repeated SOP instances.

    Returns
    -------
    groups : dict[str, list[SliceHeader]]
        Series key -> slices (first file, in path order, for each SOP instance and frame).
    duplicates : dict[str, FileRejected]
        Relative path -> rejection for every later copy of an already-seen SOPInstanceUID.
    """
    groups: dict[str, list[SliceHeader]] = {}
    seen: set[str] = set()
    duplicates: dict[str, FileRejected] = {}
    for header in sorted(headers, key=lambda h: (h.rel_path, h.pixel.frame)):
        if header.instance_key in seen:
            duplicates[header.rel_path] = FileRejected(
                RejectCode.DUPLICATE_INSTANCE,
                "duplicate SOPInstanceUID: another file in this export holds the same image",
            )
            continue
        seen.add(header.instance_key)
        groups.setdefault(header.series_key, []).append(header)
    if duplicates:  # a multi-frame file is either wholly a copy or wholly used
        for series in groups.values():
            series[:] = [h for h in series if h.rel_path not in duplicates]
    return {k: v for k, v in groups.items() if v}, duplicates


def order_series(slices: list[SliceHeader], *, min_slices: int = MIN_SLICES) -> OrderedSeries:
    """Sort one series along its slice normal and check that it forms a regular volume.

    Parameters
    ----------
    slices : list[SliceHeader]
        All slices of one series, in any order.
    min_slices : int
        Fewest slices accepted as a volume (default: 3).

    Raises
    ------
    SeriesRejected
        If there are too few slices, the slices disagree on matrix/spacing/orientation/study,
        two slices share a position, a slice is missing (gap), the spacing varies, the slices
        do not lie on a line, or the gantry tilt exceeds :data:`MAX_TILT_DEG`. The reason names
        the gap in mm and the sorted slice indices.
    """
    if len(slices) < min_slices:
        raise SeriesRejected(
            f"series has {len(slices)} slice(s); at least {min_slices} are needed to form a volume"
        )
    first = slices[0]
    _check_consistent(slices)
    row, col = np.asarray(first.orientation[:3]), np.asarray(first.orientation[3:])
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    if len(slices) * first.rows * first.columns > MAX_SERIES_VOXELS:
        raise SeriesRejected(
            f"series too large: {len(slices)}x{first.rows}x{first.columns} voxels exceeds {MAX_SERIES_VOXELS}"
        )
    positions = np.array([s.position for s in slices], dtype=np.float64)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    ordered = tuple(slices[i] for i in order)
    positions = positions[order]
    spacing = _check_spacing(np.diff(along[order]))
    step = (positions[-1] - positions[0]) / (len(ordered) - 1)  # keeps gantry tilt as a shear
    tilt = _check_line(positions, step, normal, first.pixel_spacing)
    affine = np.eye(4)
    affine[:3, 0] = step
    affine[:3, 1] = col * first.pixel_spacing[0]  # row index i moves along the column direction
    affine[:3, 2] = row * first.pixel_spacing[1]  # column index j moves along the row direction
    affine[:3, 3] = positions[0]
    plane = ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]
    if plane == "axial" and abs(normal[2]) < AXIAL_MIN_COS:
        plane = "oblique"
    return OrderedSeries(slices=ordered, slice_spacing=spacing, affine=affine, plane=plane, tilt_deg=tilt)


def _check_line(positions: np.ndarray, step: np.ndarray, normal: np.ndarray, pixel_spacing: tuple[float, float]) -> float:
    """Check the slices lie on one line; return the gantry tilt in degrees (0 below 0.5)."""
    expected = positions[0] + np.outer(np.arange(len(positions)), step)
    off = float(np.max(np.linalg.norm(positions - expected, axis=1)))
    if off > 0.1 + 0.5 * max(pixel_spacing):
        raise SeriesRejected(
            f"slice positions do not lie on one line (a slice is {off:.1f} mm off it): two stacks or a moved "
            "patient table in one series"
        )
    cos = abs(float(step @ normal)) / float(np.linalg.norm(step))
    tilt = float(np.degrees(np.arccos(min(1.0, cos))))
    if tilt > MAX_TILT_DEG:
        raise SeriesRejected(
            f"gantry tilt of {tilt:.1f} degrees (slice normal vs stacking direction) exceeds {MAX_TILT_DEG:.0f}"
        )
    return round(tilt, 2) if tilt >= _TILT_NOTE_DEG else 0.0


def _check_consistent(slices: list[SliceHeader]) -> None:
    first = slices[0]
    matrix = {(s.rows, s.columns) for s in slices}
    if len(matrix) > 1:
        sizes = sorted(f"{r}x{c}" for r, c in matrix)
        raise SeriesRejected(f"slices differ in matrix size ({' vs '.join(sizes[:3])})")
    spacings = np.array([s.pixel_spacing for s in slices])
    if not np.allclose(spacings, spacings[0], rtol=1e-3, atol=1e-4):
        raise SeriesRejected("slices differ in PixelSpacing (0028,0030)")
    orientations = np.array([s.orientation for s in slices])
    if not np.allclose(orientations, orientations[0], atol=1e-3):
        raise SeriesRejected("slices differ in ImageOrientationPatient (0020,0037)")
    if any(s.study_uid_key != first.study_uid_key or s.patient_key != first.patient_key for s in slices):
        raise SeriesRejected("slices of one SeriesInstanceUID belong to different studies or patients")


def _check_spacing(gaps: np.ndarray) -> float:
    """Return the uniform slice spacing, or raise with the first irregular gap named."""
    n = len(gaps) + 1
    duplicate = np.flatnonzero(gaps < _DUPLICATE_MM)
    if duplicate.size:
        i = int(duplicate[0])
        raise SeriesRejected(
            f"duplicate slice position: sorted slices {i} and {i + 1} (of {n}) are at the same location "
            f"({duplicate.size} such pair(s)); a repeated or overlapping acquisition in one series"
        )
    spacing = float(np.median(gaps))
    bad = np.flatnonzero(np.abs(gaps - spacing) > _SPACING_REL_TOL * spacing)
    if bad.size:
        i = int(bad[0])
        gap = float(gaps[i])
        missing = round(gap / spacing) - 1
        if gap > spacing and missing >= 1 and abs(gap - (missing + 1) * spacing) <= _SPACING_REL_TOL * spacing:
            raise SeriesRejected(
                f"gap of {gap:.2f} mm between sorted slices {i} and {i + 1} (of {n}) where the spacing is "
                f"{spacing:.2f} mm: {missing} slice(s) missing"
            )
        raise SeriesRejected(
            f"non-uniform slice spacing: gaps range from {gaps.min():.2f} to {gaps.max():.2f} mm "
            f"(first irregular gap {gap:.2f} mm between sorted slices {i} and {i + 1} of {n}); "
            "irregular stacks are not resampled, since they usually hide a missing or overlapping acquisition"
        )
    return spacing


def load_hu_volume(series: OrderedSeries, scratch: VolumeScratch | None = None) -> np.ndarray:
    """Read every slice of a checked series and stack them in HU (into ``scratch`` when given).

    Returns
    -------
    np.ndarray
        float32 array of shape (slices, rows, columns), slices in ``series.slices`` order.

    Raises
    ------
    SeriesRejected
        If any slice's pixels are unreadable; ``failed_files`` names those files, the reason
        says how many slices failed (the series would have a gap).
    """
    volume, failed = read_hu_frames(series.slices, scratch)
    if failed:
        n_failed = sum(1 for s in series.slices if s.rel_path in failed)
        raise SeriesRejected(
            f"{n_failed} of {len(series.slices)} slice(s) have unreadable pixel data; the volume would have a gap",
            failed_files=failed,
        )
    return volume


def selection_key(series: OrderedSeries) -> tuple[int, float, int, str]:
    """Sort key choosing a study's series: axial first, then thinnest, then most slices, then path order.

    "Thinnest" is the reconstructed slice spacing measured from ImagePositionPatient (SliceThickness
    is optional and sometimes stale); among equal spacings the longest coverage wins, and the first
    file path breaks remaining ties, so the choice does not depend on the site salt. Coronal,
    sagittal and oblique reformats are used only when a study has no usable axial series.
    """
    first_path = min(s.rel_path for s in series.slices)
    return (0 if series.plane == "axial" else 1, round(series.slice_spacing, 2), -len(series.slices), first_path)
