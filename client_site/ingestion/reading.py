"""Walk a PACS export and read DICOM headers, rejecting each unusable file with a specific reason.

Only single-frame CT Image Storage objects with full geometry are kept. Everything read here stays
in memory: the :class:`SliceHeader` holds PHI (IDs, names) that later steps turn into salted keys
or use to scrub reports, and that is never written out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut
from pydicom.uid import UID

from client_site.ingestion.errors import FileRejected, RejectCode
from client_site.ingestion.pixel_element import check_pixel_element

logger = logging.getLogger(__name__)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
MAX_MATRIX = 4096  # rows or columns; larger is not a CT slice
MAX_PIXELS_PER_FILE = 1 << 26  # Rows * Columns * frames; refuse to decode more
_PERSON_NAME_TAGS = (
    "PatientName", "ReferringPhysicianName", "NameOfPhysiciansReadingStudy", "PerformingPhysicianName",
    "OperatorsName", "PhysiciansOfRecord", "RequestingPhysician",
)
_IDENTITY_TAGS = (
    ("SOPInstanceUID", "(0008,0018)"),
    ("SeriesInstanceUID", "(0020,000E)"),
    ("StudyInstanceUID", "(0020,000D)"),
    ("PatientID", "(0010,0020)"),
)
_GEOMETRY_TAGS = (
    ("Rows", "(0028,0010)"),
    ("Columns", "(0028,0011)"),
    ("PixelSpacing", "(0028,0030)"),
    ("ImagePositionPatient", "(0020,0032)"),
    ("ImageOrientationPatient", "(0020,0037)"),
    ("BitsAllocated", "(0028,0100)"),
)


@dataclass(frozen=True)
class SliceHeader:
    """What ingestion needs from one CT slice header (holds PHI: memory only).

    Attributes
    ----------
    path : Path
        Absolute path of the file.
    rel_path : str
        Path relative to the site directory, as written to ingest_report.json.
    patient_id, accession, study_uid, series_uid, sop_uid : str
        Identifiers; turned into salted keys or used to scrub reports, never written.
    person_names : tuple[str, ...]
        Non-empty person-name values (patient, referring/reading/performing physicians,
        operators), used only to scrub report bodies.
    position : tuple[float, float, float]
        ImagePositionPatient in mm (DICOM LPS patient coordinates).
    orientation : tuple[float, ...]
        ImageOrientationPatient: row direction cosines then column direction cosines.
    pixel_spacing : tuple[float, float]
        PixelSpacing (between rows, between columns) in mm.
    rows, columns : int
        Matrix size.
    """

    path: Path
    rel_path: str
    patient_id: str
    person_names: tuple[str, ...]
    accession: str
    study_uid: str
    series_uid: str
    sop_uid: str
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]
    pixel_spacing: tuple[float, float]
    rows: int
    columns: int


def read_header(path: Path, rel_path: str) -> SliceHeader:
    """Read one file's header (``stop_before_pixels``) and check it is a usable CT slice.

    Raises
    ------
    FileRejected
        With a specific reason: empty, not DICOM, corrupt, not CT, localizer, multi-frame,
        a missing or malformed tag (named), an absurd matrix, missing or truncated PixelData.
    """
    try:
        size = path.stat().st_size
        if size == 0:
            raise FileRejected(RejectCode.EMPTY_FILE, "empty file (0 bytes)")
        with path.open("rb") as handle:
            ds = _read_dataset(handle)
            _check_content(ds)
            check_pixel_element(handle, ds, size)
        return _to_header(ds, path, rel_path)
    except FileRejected:
        raise
    except OSError as error:
        raise FileRejected(RejectCode.UNREADABLE_FILE, f"cannot read file: {error.strerror}") from error
    except Exception as error:  # a tag value pydicom cannot convert (bad IS/DS/VR): one bad file must not stop the run
        raise FileRejected(
            RejectCode.CORRUPT_HEADER,
            f"malformed DICOM header ({type(error).__name__} while converting tag values)",
        ) from error


def _read_dataset(handle: BinaryIO) -> Dataset:
    """Read a Part-10 file; fall back to a raw (meta-less) dataset only if it looks like CT data."""
    try:
        return pydicom.dcmread(handle, stop_before_pixels=True)
    except InvalidDicomError:
        pass
    except Exception as error:  # pydicom raises many types on damaged headers
        raise FileRejected(
            RejectCode.CORRUPT_HEADER,
            f"truncated or corrupt DICOM header ({type(error).__name__}); the file cannot be parsed",
        ) from error
    not_dicom = FileRejected(
        RejectCode.NOT_DICOM,
        "not a DICOM file: no 'DICM' prefix after the 128-byte preamble and no recognisable "
        "DICOM data set (re-export it from PACS as DICOM Part 10)",
    )
    try:
        handle.seek(0)
        ds = pydicom.dcmread(handle, stop_before_pixels=True, force=True)
        # Forced reads "succeed" on random bytes, so demand the tags a real image must have.
        if not all(key in ds for key in ("SOPClassUID", "Modality", "SeriesInstanceUID")):
            raise not_dicom
        str(ds.Modality)
    except FileRejected:
        raise
    except Exception as error:
        raise not_dicom from error
    return ds


def _check_content(ds: Dataset) -> None:
    if "Modality" not in ds or not str(ds.Modality).strip():
        raise FileRejected(RejectCode.MISSING_TAG, "missing tag Modality (0008,0060)")
    modality = str(ds.Modality).strip()
    if modality != "CT":
        raise FileRejected(RejectCode.NOT_CT, f"modality is {modality}, not CT")
    sop_class = str(ds.get("SOPClassUID", CT_IMAGE_STORAGE))
    if sop_class == ENHANCED_CT_IMAGE_STORAGE:
        raise FileRejected(
            RejectCode.UNSUPPORTED_SOP_CLASS,
            "Enhanced CT (multi-frame) is not supported; export the series as CT Image Storage",
        )
    if sop_class != CT_IMAGE_STORAGE:
        raise FileRejected(
            RejectCode.UNSUPPORTED_SOP_CLASS,
            f"SOP class '{UID(sop_class).name}' is not CT Image Storage",
        )
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    if "LOCALIZER" in image_type:
        raise FileRejected(RejectCode.LOCALIZER, "localizer/scout image (ImageType LOCALIZER)")
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames != 1:
        raise FileRejected(RejectCode.MULTI_FRAME, f"multi-frame image ({frames} frames) is not supported")
    for keyword, tag in _IDENTITY_TAGS + _GEOMETRY_TAGS:
        value = ds.get(keyword)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise FileRejected(RejectCode.MISSING_TAG, f"missing tag {keyword} {tag}")
    if "ModalityLUTSequence" not in ds:
        for keyword, tag in (("RescaleIntercept", "(0028,1052)"), ("RescaleSlope", "(0028,1053)")):
            if ds.get(keyword) in (None, ""):
                raise FileRejected(
                    RejectCode.MISSING_TAG, f"missing tag {keyword} {tag}: HU cannot be computed"
                )
    rows, cols = int(ds.Rows), int(ds.Columns)
    if not (0 < rows <= MAX_MATRIX and 0 < cols <= MAX_MATRIX) or rows * cols * frames > MAX_PIXELS_PER_FILE:
        raise FileRejected(
            RejectCode.TOO_LARGE,
            f"implausible image matrix {rows}x{cols}x{frames} (limit {MAX_MATRIX} per side); pixels not read",
        )
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise FileRejected(RejectCode.MALFORMED_TAG, "SamplesPerPixel is not 1: CT must be greyscale")


def _floats(ds: Dataset, keyword: str, tag: str, count: int) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in ds.get(keyword))
    except (TypeError, ValueError) as error:
        raise FileRejected(RejectCode.MALFORMED_TAG, f"malformed {keyword} {tag}: not numbers") from error
    if len(values) != count or not all(np.isfinite(values)):
        raise FileRejected(
            RejectCode.MALFORMED_TAG, f"malformed {keyword} {tag}: expected {count} finite numbers"
        )
    return values


def _to_header(ds: Dataset, path: Path, rel_path: str) -> SliceHeader:
    position = _floats(ds, "ImagePositionPatient", "(0020,0032)", 3)
    orientation = _floats(ds, "ImageOrientationPatient", "(0020,0037)", 6)
    spacing = _floats(ds, "PixelSpacing", "(0028,0030)", 2)
    if min(spacing) <= 0:
        raise FileRejected(RejectCode.MALFORMED_TAG, "malformed PixelSpacing (0028,0030): not positive")
    row, col = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    if abs(np.linalg.norm(row) - 1) > 1e-2 or abs(np.linalg.norm(col) - 1) > 1e-2 or abs(row @ col) > 1e-2:
        raise FileRejected(
            RejectCode.MALFORMED_TAG,
            "malformed ImageOrientationPatient (0020,0037): not two orthogonal unit vectors",
        )
    return SliceHeader(
        path=path,
        rel_path=rel_path,
        patient_id=str(ds.PatientID).strip(),
        person_names=_person_names(ds),
        accession=str(ds.get("AccessionNumber") or "").strip(),
        study_uid=str(ds.StudyInstanceUID).strip(),
        series_uid=str(ds.SeriesInstanceUID).strip(),
        sop_uid=str(ds.SOPInstanceUID).strip(),
        position=(position[0], position[1], position[2]),
        orientation=(orientation[0], orientation[1], orientation[2],
                     orientation[3], orientation[4], orientation[5]),
        pixel_spacing=(spacing[0], spacing[1]),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
    )


def _person_names(ds: Dataset) -> tuple[str, ...]:
    names: list[str] = []
    for keyword in _PERSON_NAME_TAGS:
        value = ds.get(keyword)
        values = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
        names += [str(v).strip() for v in values if v is not None and str(v).strip()]
    return tuple(names)


def read_hu_slice(header: SliceHeader) -> np.ndarray:
    """Read one slice's pixels and convert them to Hounsfield units.

    Uses :func:`pydicom.pixels.apply_modality_lut` (rescale slope/intercept or a modality LUT),
    applied per slice because slope and intercept may differ between slices.

    Returns
    -------
    np.ndarray
        float32 array of shape (rows, columns), in HU.

    Raises
    ------
    FileRejected
        If the pixel data cannot be decoded (truncated, unsupported compression, wrong size).
    """
    try:
        ds = pydicom.dcmread(header.path)
        if "PixelData" not in ds:
            raise FileRejected(RejectCode.MISSING_PIXEL_DATA, "missing PixelData (7FE0,0010): the file holds no image")
        hu = apply_modality_lut(ds.pixel_array, ds)
    except FileRejected:
        raise
    except Exception as error:  # decoders raise ValueError, RuntimeError, NotImplementedError, ...
        raise FileRejected(
            RejectCode.PIXELS_UNREADABLE,
            f"pixel data unreadable ({type(error).__name__}: {_short(error)})",
        ) from error
    if hu.shape != (header.rows, header.columns):
        raise FileRejected(
            RejectCode.PIXELS_UNREADABLE,
            f"decoded pixels have shape {hu.shape}, expected {(header.rows, header.columns)}",
        )
    return np.asarray(hu, dtype=np.float32)


def _short(error: Exception, limit: int = 160) -> str:
    """First line of an exception message, cut to ``limit`` characters (decoder messages hold no PHI)."""
    text = str(error).splitlines()[0] if str(error) else ""
    return text[:limit]
