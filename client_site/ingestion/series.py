"""Group slices into series, order them along the slice normal, check geometry, build HU volumes.

Slices are ordered by ``dot(ImagePositionPatient, cross(row, col))`` -- never by InstanceNumber,
which PACS exports do not keep consistent -- and a series is used only if its slice spacing is
uniform (no missing slice, no duplicate position).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from client_site.ingestion.errors import FileRejected, RejectCode, SeriesRejected
from client_site.ingestion.reading import SliceHeader, read_hu_slice

logger = logging.getLogger(__name__)

MIN_SLICES = 3  # fewer cannot show that the spacing is uniform
MAX_SERIES_VOXELS = 1 << 29  # 2 GiB as float32; larger series are refused before reading pixels
AXIAL_MIN_COS = 0.9  # |slice normal . z| at least this (tilt <= ~26 degrees) counts as axial
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
        Distance between consecutive slices in mm.
    affine : np.ndarray
        (4, 4) voxel-to-patient (DICOM LPS, mm) matrix for the array (slice, row, col).
    """

    slices: tuple[SliceHeader, ...]
    slice_spacing: float
    affine: np.ndarray

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


def group_by_series(headers: Iterable[SliceHeader]) -> tuple[dict[str, list[SliceHeader]], dict[str, FileRejected]]:
    """Group slice headers by SeriesInstanceUID, dropping repeated SOP instances.

    Returns
    -------
    groups : dict[str, list[SliceHeader]]
        SeriesInstanceUID -> slices (first file, in path order, for each SOPInstanceUID).
    duplicates : dict[str, FileRejected]
        Relative path -> rejection for every later copy of an already-seen SOPInstanceUID.
    """
    groups: dict[str, list[SliceHeader]] = {}
    seen: set[str] = set()
    duplicates: dict[str, FileRejected] = {}
    for header in sorted(headers, key=lambda h: h.rel_path):
        if header.sop_uid in seen:
            duplicates[header.rel_path] = FileRejected(
                RejectCode.DUPLICATE_INSTANCE,
                "duplicate SOPInstanceUID: another file in this export holds the same image",
            )
            continue
        seen.add(header.sop_uid)
        groups.setdefault(header.series_uid, []).append(header)
    return groups, duplicates


def order_series(slices: list[SliceHeader], *, min_slices: int = MIN_SLICES) -> OrderedSeries:
    """Sort one series along its slice normal and check that it forms a regular volume.

    Parameters
    ----------
    slices : list[SliceHeader]
        All slices of one SeriesInstanceUID, in any order.
    min_slices : int
        Fewest slices accepted as a volume (default: 3).

    Raises
    ------
    SeriesRejected
        If there are too few slices, the slices disagree on matrix/spacing/orientation/study,
        the series is not axial, two slices share a position, a slice is missing (gap) or the
        spacing varies. The reason names the gap in mm and the sorted slice indices.
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
    if abs(normal[2]) < AXIAL_MIN_COS:
        angle = float(np.degrees(np.arccos(min(1.0, abs(normal[2])))))
        raise SeriesRejected(f"not an axial series: slice normal is {angle:.0f} degrees from the patient z axis")
    if len(slices) * first.rows * first.columns > MAX_SERIES_VOXELS:
        raise SeriesRejected(
            f"series too large: {len(slices)}x{first.rows}x{first.columns} voxels exceeds {MAX_SERIES_VOXELS}"
        )
    along = np.array([np.dot(s.position, normal) for s in slices])
    order = np.argsort(along, kind="stable")
    ordered = tuple(slices[i] for i in order)
    gaps = np.diff(along[order])
    spacing = _check_spacing(gaps)
    positions = np.array([s.position for s in ordered])
    step = (positions[-1] - positions[0]) / (len(ordered) - 1)  # keeps gantry tilt as a shear
    affine = np.eye(4)
    affine[:3, 0] = step
    affine[:3, 1] = col * first.pixel_spacing[0]  # row index i moves along the column direction
    affine[:3, 2] = row * first.pixel_spacing[1]  # column index j moves along the row direction
    affine[:3, 3] = positions[0]
    return OrderedSeries(slices=ordered, slice_spacing=spacing, affine=affine)


def _check_consistent(slices: list[SliceHeader]) -> None:
    first = slices[0]
    for other in slices[1:]:
        if (other.rows, other.columns) != (first.rows, first.columns):
            raise SeriesRejected(
                f"slices differ in matrix size ({first.rows}x{first.columns} vs {other.rows}x{other.columns})"
            )
        if not np.allclose(other.pixel_spacing, first.pixel_spacing, rtol=1e-3, atol=1e-4):
            raise SeriesRejected("slices differ in PixelSpacing (0028,0030)")
        if not np.allclose(other.orientation, first.orientation, atol=1e-3):
            raise SeriesRejected("slices differ in ImageOrientationPatient (0020,0037)")
        if other.study_uid != first.study_uid or other.patient_id != first.patient_id:
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
            f"(first irregular gap {gap:.2f} mm between sorted slices {i} and {i + 1} of {n})"
        )
    return spacing


def load_hu_volume(series: OrderedSeries) -> np.ndarray:
    """Read every slice of a checked series and stack them in HU.

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
    volume = np.empty(series.shape, dtype=np.float32)
    failed: dict[str, FileRejected] = {}
    for k, header in enumerate(series.slices):
        try:
            volume[k] = read_hu_slice(header)
        except FileRejected as rejection:
            failed[header.rel_path] = rejection
    if failed:
        raise SeriesRejected(
            f"{len(failed)} of {len(series.slices)} slice(s) have unreadable pixel data; "
            "the volume would have a gap",
            failed_files=failed,
        )
    return volume


def selection_key(series: OrderedSeries) -> tuple[float, int, str]:
    """Sort key choosing a study's series: thinnest first, then most slices, then UID order.

    "Thinnest" is the reconstructed slice spacing measured from ImagePositionPatient (SliceThickness
    is optional and sometimes stale); among equal spacings the longest coverage wins, and the
    SeriesInstanceUID breaks remaining ties so the choice does not depend on the site salt.
    """
    return (round(series.slice_spacing, 2), -len(series.slices), series.slices[0].series_uid)
