"""Write a rendered series as a DICOM CT Image Storage series (plus an optional scout and a thick series).

Follows pydicom 3's recipe for valid files: file meta
with MediaStorageSOPClassUID/InstanceUID and Explicit VR Little Endian, every UID set
before ``set_pixel_data(..., generate_instance_uid=False)``, ``save_as(enforce_file_format=True)``.
File names carry no PHI: ``<folder>/IM<InstanceNumber:05d>.dcm``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_encoder
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian

from .dicom_bytes import SeriesEncoder, check_encoder
from .identities import derived_uid
from .profiles import SiteProfile
from .render import Series


@dataclass(frozen=True)
class StudyHeader:
    """Patient, study and series identity written into every file of a study.

    ``patient_name``/``referring`` are DICOM PN strings (may hold an ideographic part);
    dates are YYYYMMDD and the time HHMMSS.
    """

    patient_name: str
    patient_id: str
    birth_date: str
    sex: str
    age: int
    accession: str
    study_date: str
    study_time: str
    referring: str
    study_uid: str
    series_uid: str
    frame_uid: str
    scout_uid: str
    study_description: str


_VARYING = (0x00080018, 0x00200013, 0x00200032, 0x00201041, 0x7FE00010)
"""SOPInstanceUID, InstanceNumber, ImagePositionPatient, SliceLocation, PixelData."""


def _ds(value: float) -> str:
    """Decimal String without binary noise (at most 16 characters for our magnitudes)."""
    return format(value, ".10g")


def _base(header: StudyHeader, profile: SiteProfile, sop_uid: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = profile.charset
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    for tag in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        setattr(ds, tag, header.study_date)
    for tag in ("StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime"):
        setattr(ds, tag, header.study_time)
    ds.AccessionNumber = header.accession
    ds.Modality = "CT"
    ds.Manufacturer = profile.manufacturer
    ds.InstitutionName = profile.institution
    ds.ReferringPhysicianName = header.referring
    ds.StudyDescription = header.study_description
    ds.ManufacturerModelName = profile.model
    ds.PatientName = header.patient_name
    ds.PatientID = header.patient_id
    ds.PatientBirthDate = header.birth_date
    ds.PatientSex = header.sex
    ds.PatientAge = f"{header.age:03d}Y"
    ds.BodyPartExamined = "CHEST"
    ds.KVP = profile.kvp
    ds.XRayTubeCurrent = profile.tube_current_ma
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = header.study_uid
    ds.StudyID = ""
    ds.AcquisitionNumber = 1
    ds.FrameOfReferenceUID = header.frame_uid
    ds.PositionReferenceIndicator = ""
    return ds


def write_series(
    folder: Path, series: Series, header: StudyHeader, profile: SiteProfile, *,
    series_uid: str | None = None, series_number: int = 2,
) -> list[Path]:
    """Write an axial series, one file per slice, in the site's transfer syntax; returns the paths.

    The default is the study's primary axial series (``header.series_uid``, SeriesNumber 2); a
    thicker reconstruction of the same scan gets its own UID and number.
    """
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or header.series_uid
    d = series.hu.shape[0]
    stored = series.hu - int(profile.rescale_intercept)
    stored = stored.astype(np.int16 if profile.pixel_signed else np.uint16)
    thk = series.thickness_mm
    # one dataset per series; only the per-slice elements change between files (much faster
    # than building 50 validated elements per file)
    ds = _base(header, profile, series_uid)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SeriesDescription = f"Thorax {thk:g}mm {profile.kernel}"
    ds.SliceThickness = _ds(thk)
    ds.ConvolutionKernel = profile.kernel
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [_ds(series.pixel_mm), _ds(series.pixel_mm)]
    ds.RescaleIntercept = f"{profile.rescale_intercept:g}"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter, ds.WindowWidth = "-600", "1500"
    encoder: SeriesEncoder | None = None
    paths = []
    for k in range(d):
        number = d - k if profile.head_first_numbering else k + 1
        sop = UID(derived_uid(series_uid, str(number)))
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.InstanceNumber = number
        z = float(series.z_positions[k])
        ds.ImagePositionPatient = [_ds(series.position[0]), _ds(series.position[1]), _ds(z)]
        ds.SliceLocation = _ds(z)
        path = folder / f"IM{number:05d}.dcm"
        if k == 0:
            ds.set_pixel_data(stored[k], "MONOCHROME2", profile.bits_stored, generate_instance_uid=False)
            if profile.padding_hu is not None:
                ds.PixelPaddingValue = int(profile.padding_hu - profile.rescale_intercept)
            if profile.transfer_syntax != ExplicitVRLittleEndian:
                ds.compress(profile.transfer_syntax, generate_instance_uid=False)
            candidate = SeriesEncoder(ds, _VARYING)
            encoder = candidate if check_encoder(candidate, ds, path, _VARYING) else None
        elif encoder is not None:
            ds.PixelData = _pixel_data(stored[k], profile)
            path.write_bytes(encoder.encode(ds.file_meta, [ds[t] for t in _VARYING]))
        else:
            ds.PixelData = _pixel_data(stored[k], profile)
            ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _pixel_data(stored: np.ndarray, profile: SiteProfile) -> bytes:
    """PixelData of one slice: raw, or one encapsulated frame in the site's compressed syntax.

    The same bytes as ``Dataset.compress`` would write (pydicom's encoders, pylibjpeg plugins).
    """
    if profile.transfer_syntax == ExplicitVRLittleEndian:
        return stored.tobytes()
    frame = get_encoder(profile.transfer_syntax).encode(
        stored, rows=stored.shape[0], columns=stored.shape[1], samples_per_pixel=1, bits_allocated=16,
        bits_stored=profile.bits_stored, pixel_representation=int(profile.pixel_signed),
        photometric_interpretation="MONOCHROME2", number_of_frames=1)
    return encapsulate([frame])


def thick_reconstruction(series: Series, factor: int = 2) -> Series:
    """The same scan reconstructed ``factor`` times thicker (mean of consecutive slices), for writing.

    Only ``hu``, ``z_positions`` and ``thickness_mm`` change; masks and lung stay those of the thin
    series, which is the one the ground truth describes.
    """
    d = series.hu.shape[0] // factor * factor
    hu = series.hu[:d].reshape(d // factor, factor, *series.hu.shape[1:]).mean(axis=1)
    z = series.z_positions[:d].reshape(d // factor, factor).mean(axis=1)
    return replace(series, hu=np.rint(hu).astype(series.hu.dtype), z_positions=z,
                   thickness_mm=series.thickness_mm * factor)


def write_scout(folder: Path, series: Series, header: StudyHeader, profile: SiteProfile) -> Path:
    """Write the AP scout (ImageType ORIGINAL\\PRIMARY\\LOCALIZER, SeriesNumber 1).

    It is a projection of the attenuation through the axial volume, head at the top row;
    ingestion is expected to drop it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    mu = np.clip((series.hu.astype(np.float32) + 1000.0) / 1000.0, 0.0, 4.0)
    proj = mu.sum(axis=1)[::-1]  # (D, W), row 0 = most cranial slice
    image = np.rint(proj / max(float(proj.max()), 1e-6) * 3000.0).astype(np.uint16)
    sop = derived_uid(header.scout_uid, "1")
    ds = _base(header, profile, sop)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.SeriesDescription = "Topogram 0.6 T20s" if profile.manufacturer == "SIEMENS" else "SCOUT"
    ds.SeriesInstanceUID = header.scout_uid
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    top = float(series.z_positions.max())
    ds.ImagePositionPatient = [_ds(series.position[0]), "0", _ds(top)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.PixelSpacing = [_ds(series.thickness_mm), _ds(series.pixel_mm)]
    ds.set_pixel_data(image, "MONOCHROME2", 12, generate_instance_uid=False)
    ds.RescaleIntercept, ds.RescaleSlope = "0", "1"
    path = folder / "IM00001.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path
