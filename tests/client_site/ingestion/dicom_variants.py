"""Builders for real-world DICOM variants: relabelled real compressed files, Enhanced CT, tilted and
reformatted series of an analytic phantom defined in patient (LPS) coordinates, raw files without meta."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from ingestion_builders import Person, copy_testdata
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
ROD = (30.0, 0.0)  # a 700 HU rod along z at x=30 (patient left), y=0 mm
SPHERE = (-20.0, -15.0, 0.0)  # a -600 HU ball of radius 15 mm (anterior right)


def world_hu(points: np.ndarray) -> np.ndarray:
    """HU of the analytic phantom at LPS points (..., 3): air, a 70 mm body cylinder, the rod and the ball."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    hu = np.where(x**2 + y**2 < 70.0**2, 40.0, -1000.0)
    hu = np.where((x - ROD[0]) ** 2 + (y - ROD[1]) ** 2 < 8.0**2, 700.0, hu)
    ball = (x - SPHERE[0]) ** 2 + (y - SPHERE[1]) ** 2 + (z - SPHERE[2]) ** 2 < 15.0**2
    return np.where(ball, -600.0, hu)


def _identity(ds: Dataset, person: Person, series_uid: str, sop_uid: str, sop_class: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = sop_class, sop_uid, "CT"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = person.name, person.patient_id, person.birth_date
    ds.AccessionNumber, ds.StudyDate, ds.ReferringPhysicianName = person.accession, person.study_date, person.referring
    ds.StudyInstanceUID, ds.SeriesInstanceUID = person.study_uid, series_uid


def write_world_series(
    folder: Path, person: Person, *, row: Sequence[float], col: Sequence[float], centres: np.ndarray,
    size: int = 64, pixel: float = 2.5,
) -> list[Path]:
    """A series sampling :func:`world_hu`: slice k is centred on ``centres[k]`` with the given directions.

    Gantry tilt: ``col`` out of the axial plane while the centres advance along z. A coronal series:
    ``row=(1,0,0), col=(0,0,-1)`` with centres advancing along y.
    """
    folder.mkdir(parents=True, exist_ok=True)
    row_v, col_v = np.asarray(row, float), np.asarray(col, float)
    series_uid = generate_uid()
    ii, jj = np.mgrid[:size, :size]
    paths = []
    for k, centre in enumerate(np.asarray(centres, float)):
        ipp = centre - (size / 2) * pixel * row_v - (size / 2) * pixel * col_v
        points = ipp + (jj[..., None] + 0.5) * pixel * row_v + (ii[..., None] + 0.5) * pixel * col_v
        stored = (world_hu(points) + 1024).astype(np.uint16)
        ds = Dataset()
        sop = generate_uid()
        _identity(ds, person, series_uid, sop, CTImageStorage)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [round(float(v), 4) for v in ipp]
        ds.ImageOrientationPatient = [round(float(v), 6) for v in (*row_v, *col_v)]
        ds.PixelSpacing = [pixel, pixel]
        ds.set_pixel_data(stored, "MONOCHROME2", 12, generate_instance_uid=False)
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        path = folder / f"im{k:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_enhanced_ct(
    path: Path, person: Person, hu: np.ndarray, *, spacing: float = 2.5, pixel: float = 0.7,
    slopes: Sequence[float] | None = None, compress: bool = False,
) -> None:
    """An Enhanced CT file: geometry in the functional groups, rescale per frame, frames in shuffled z order."""
    n = len(hu)
    slopes = list(slopes or [1.0] * n)
    ds = Dataset()
    _identity(ds, person, generate_uid(), generate_uid(), ENHANCED_CT)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    shared = Dataset()
    measures, orientation, frame_type = Dataset(), Dataset(), Dataset()
    measures.PixelSpacing, measures.SliceThickness = [pixel, pixel], spacing
    orientation.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    frame_type.FrameType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    shared.PixelMeasuresSequence = DicomSequence([measures])
    shared.PlaneOrientationSequence = DicomSequence([orientation])
    shared.CTImageFrameTypeSequence = DicomSequence([frame_type])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    order = list(range(n))[::-1]  # frames stored head to feet: ordering must come from the positions
    per_frame, stored = [], []
    for k in order:
        item, position, transform = Dataset(), Dataset(), Dataset()
        position.ImagePositionPatient = [-11.2, -11.2, -100.0 + spacing * k]
        transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = slopes[k], -1024 * slopes[k], "HU"
        item.PlanePositionSequence = DicomSequence([position])
        item.PixelValueTransformationSequence = DicomSequence([transform])
        per_frame.append(item)
        stored.append(((hu[k] + 1024 * slopes[k]) / slopes[k]).astype(np.uint16))
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.set_pixel_data(np.stack(stored), "MONOCHROME2", 12, generate_instance_uid=False)
    if compress:
        ds.compress("1.2.840.10008.1.2.5", generate_instance_uid=False)  # RLE Lossless
    ds.save_as(path, enforce_file_format=True)


def relabel_as_ct(
    name: str, folder: Path, person: Person, *, n: int = 3, spacing: float = 2.5,
    rescale: tuple[float, float] | None = None,
) -> list[Path]:
    """``n`` CT slices whose PixelData (any compression) is a pydicom test file's, bytes untouched.

    Only the identity and geometry tags change, so decoding exercises the file's real codestream.
    """
    source = copy_testdata(name, folder.parent / f"_source_{name}")
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    paths = []
    for k in range(n):
        ds = pydicom.dcmread(source)
        sop = generate_uid()
        syntax = ds.file_meta.TransferSyntaxUID
        _identity(ds, person, series_uid, sop, CTImageStorage)
        ds.file_meta.TransferSyntaxUID = syntax
        for keyword in ("NumberOfFrames", "FrameIncrementPointer", "SharedFunctionalGroupsSequence",
                        "PerFrameFunctionalGroupsSequence"):
            if keyword in ds:
                delattr(ds, keyword)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [0.0, 0.0, spacing * k]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.5, 0.5]
        if rescale is not None or "RescaleSlope" not in ds:
            ds.RescaleSlope, ds.RescaleIntercept = rescale or (1.0, -1024.0)
        path = folder / f"{Path(name).stem}_{k}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    source.unlink()
    return paths


def write_raw_dataset(path: Path, ds: Dataset, *, implicit: bool = True) -> None:
    """Write ``ds`` with no preamble and no file meta (an old or hand-made export)."""
    if hasattr(ds, "file_meta"):
        del ds.file_meta
    ds.preamble = None
    pydicom.dcmwrite(path, ds, enforce_file_format=False, implicit_vr=implicit, little_endian=True)


def write_jpeg_baseline_series(folder: Path, person: Person, *, n: int = 3, size: int = 64) -> list[Path]:
    """8-bit greyscale JPEG baseline slices, the codestream made by libjpeg through Pillow."""
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    yy, xx = np.mgrid[:size, :size]
    paths = []
    for k in range(n):
        image = ((xx * 3 + yy * 2 + 20 * k) % 256).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=90)
        ds = Dataset()
        _identity(ds, person, series_uid, generate_uid(), CTImageStorage)
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = encapsulate([buffer.getvalue()])
        ds["PixelData"].VR = "OB"
        ds.ImagePositionPatient = [0.0, 0.0, 5.0 * k]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.8, 0.8]
        ds.RescaleSlope, ds.RescaleIntercept = 8.0, -1024.0
        path = folder / f"jpg{k}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
