"""Per-frame geometry and rescale of a CT object: classic top-level tags or Enhanced CT functional groups.

Enhanced CT Image Storage (PS3.3 A.38) keeps geometry and rescale out of the top level: each
frame's Plane Position, Plane Orientation, Pixel Measures and Pixel Value Transformation macros
sit in its item of PerFrameFunctionalGroupsSequence (5200,9230), or once for all frames in
SharedFunctionalGroupsSequence (5200,9229). Readers that look only at the top level (MONAI's
PydicomReader among them) get raw values with 1 mm spacing; this module reads the macros.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from client_site.ingestion.errors import FileRejected, RejectCode
from client_site.ingestion.tags import texts


@dataclass(frozen=True)
class FrameGeometry:
    """Geometry and rescale of one frame (see :class:`slices.SliceHeader` for units)."""

    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]
    pixel_spacing: tuple[float, float]
    thickness: float | None
    slope: float
    intercept: float
    frame_type: tuple[str, ...]


def floats(source: Dataset, keyword: str, tag: str, count: int, where: str = "") -> tuple[float, ...]:
    """``count`` finite numbers from a multi-valued DS tag, or a MALFORMED/MISSING_TAG rejection."""
    items = texts(source, keyword)
    if not items:
        raise FileRejected(RejectCode.MISSING_TAG, f"{where}missing tag {keyword} {tag}")
    try:
        values = tuple(float(v) for v in items)
    except (TypeError, ValueError) as error:
        raise FileRejected(RejectCode.MALFORMED_TAG, f"{where}malformed {keyword} {tag}: not numbers") from error
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise FileRejected(RejectCode.MALFORMED_TAG, f"{where}malformed {keyword} {tag}: expected {count} finite numbers")
    return values


def _optional_float(source: Dataset | None, keyword: str) -> float | None:
    items = texts(source, keyword) if source is not None else []
    if not items:
        return None
    try:
        value = float(items[0])
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def _check_geometry(geometry: FrameGeometry, where: str) -> FrameGeometry:
    if min(geometry.pixel_spacing) <= 0:
        raise FileRejected(RejectCode.MALFORMED_TAG, f"{where}malformed PixelSpacing (0028,0030): not positive")
    row, col = np.asarray(geometry.orientation[:3]), np.asarray(geometry.orientation[3:])
    if abs(np.linalg.norm(row) - 1) > 1e-2 or abs(np.linalg.norm(col) - 1) > 1e-2 or abs(row @ col) > 1e-2:
        raise FileRejected(
            RejectCode.MALFORMED_TAG,
            f"{where}malformed ImageOrientationPatient (0020,0037): not two orthogonal unit vectors",
        )
    if geometry.slope == 0:
        raise FileRejected(RejectCode.MALFORMED_TAG, f"{where}RescaleSlope (0028,1053) is 0: HU cannot be computed")
    return geometry


def _rescale(source: Dataset, where: str) -> tuple[float, float]:
    slope = floats(source, "RescaleSlope", "(0028,1053)", 1, where)[0]
    intercept = floats(source, "RescaleIntercept", "(0028,1052)", 1, where)[0]
    return slope, intercept


def classic_geometry(ds: Dataset, *, modality_lut: bool) -> FrameGeometry:
    """Geometry of a single-frame CT Image Storage object from its top-level tags.

    Parameters
    ----------
    ds : Dataset
        The header.
    modality_lut : bool
        A ModalityLUTSequence is present, so RescaleSlope/Intercept are not required.
    """
    if modality_lut:
        slope, intercept = 1.0, 0.0
    else:
        for keyword, tag in (("RescaleIntercept", "(0028,1052)"), ("RescaleSlope", "(0028,1053)")):
            if not texts(ds, keyword):
                raise FileRejected(RejectCode.MISSING_TAG, f"missing tag {keyword} {tag}: HU cannot be computed")
        slope, intercept = _rescale(ds, "")
    position = floats(ds, "ImagePositionPatient", "(0020,0032)", 3)
    orientation = floats(ds, "ImageOrientationPatient", "(0020,0037)", 6)
    spacing = floats(ds, "PixelSpacing", "(0028,0030)", 2)
    return _check_geometry(FrameGeometry(
        position=(position[0], position[1], position[2]),
        orientation=(orientation[0], orientation[1], orientation[2], orientation[3], orientation[4], orientation[5]),
        pixel_spacing=(spacing[0], spacing[1]),
        thickness=_optional_float(ds, "SliceThickness"),
        slope=slope, intercept=intercept,
        frame_type=tuple(v.upper() for v in texts(ds, "ImageType")),
    ), "")


def _first_item(source: Dataset | None, keyword: str) -> Dataset | None:
    if source is None:
        return None
    sequence = source.get(keyword)
    return sequence[0] if sequence else None


def enhanced_geometry(ds: Dataset, n_frames: int) -> list[FrameGeometry]:
    """Per-frame geometry of an Enhanced CT object from its functional groups.

    Each macro is taken from the frame's PerFrameFunctionalGroupsSequence item, else from the
    SharedFunctionalGroupsSequence. RescaleSlope/Intercept fall back to the top level, which some
    converters fill instead of the Pixel Value Transformation macro.

    Raises
    ------
    FileRejected
        If the per-frame sequence does not have one item per frame, or a frame lacks a macro;
        the reason names the frame and the macro.
    """
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    per_frame: Any = ds.get("PerFrameFunctionalGroupsSequence") or []
    if len(per_frame) != n_frames:
        raise FileRejected(
            RejectCode.MALFORMED_TAG,
            f"Enhanced CT: PerFrameFunctionalGroupsSequence (5200,9230) has {len(per_frame)} item(s) "
            f"for NumberOfFrames {n_frames}",
        )
    frames = []
    for index, item in enumerate(per_frame):
        where = f"Enhanced CT frame {index + 1} of {n_frames}: "

        def macro(keyword: str, tag: str, item: Dataset = item, where: str = where) -> Dataset:
            found = _first_item(item, keyword) or _first_item(shared, keyword)
            if found is None:
                raise FileRejected(RejectCode.MISSING_TAG,
                                   f"{where}missing {keyword} {tag} in per-frame and shared functional groups")
            return found

        position = floats(macro("PlanePositionSequence", "(0020,9113)"), "ImagePositionPatient", "(0020,0032)", 3, where)
        orientation = floats(macro("PlaneOrientationSequence", "(0020,9116)"), "ImageOrientationPatient",
                             "(0020,0037)", 6, where)
        measures = macro("PixelMeasuresSequence", "(0028,9110)")
        spacing = floats(measures, "PixelSpacing", "(0028,0030)", 2, where)
        transform = _first_item(item, "PixelValueTransformationSequence") or _first_item(
            shared, "PixelValueTransformationSequence")
        if transform is None and not texts(ds, "RescaleSlope"):
            raise FileRejected(RejectCode.MISSING_TAG, f"{where}missing PixelValueTransformationSequence (0028,9145): "
                                                       "HU cannot be computed")
        slope, intercept = _rescale(transform if transform is not None else ds, where)
        frame_type = _first_item(item, "CTImageFrameTypeSequence") or _first_item(shared, "CTImageFrameTypeSequence")
        types = (texts(frame_type, "FrameType") if frame_type is not None else []) or texts(ds, "ImageType")
        frames.append(_check_geometry(FrameGeometry(
            position=(position[0], position[1], position[2]),
            orientation=(orientation[0], orientation[1], orientation[2],
                         orientation[3], orientation[4], orientation[5]),
            pixel_spacing=(spacing[0], spacing[1]),
            thickness=_optional_float(measures, "SliceThickness"),
            slope=slope, intercept=intercept,
            frame_type=tuple(v.upper() for v in types),
        ), where))
    return frames
