"""A de-identified header summary per study (``cache/headers/<study_key>.json``) for the site's case viewer.

The header of the selected series' first file goes through ``dicognito`` (PS3.15 Annex E style:
names, IDs, accession, institution and physicians replaced, dates shifted, UIDs remapped), seeded
with a secret derived from the site salt and the patient key, so a patient's dates keep their
intervals and different patients get different shifts. Then PatientIdentityRemoved is set to YES and
DeidentificationMethodCodeSequence gets 113100 (Basic Application Confidentiality Profile) and 113107
(Retain Longitudinal Temporal Information, Modified Dates). Only a fixed whitelist of technical fields
is written -- never free text, private tags or identifiers -- so the summary holds no PHI even where
dicognito would keep something. PatientAge, which dicognito keeps, is written in years with any age
over 89 as 90 (HIPAA Safe Harbor, :mod:`ages`).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from typing import Any

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import UID

from client_site.ingestion import reading
from client_site.ingestion.ages import safe_harbor_age
from client_site.ingestion.series import OrderedSeries

DEID_METHOD = "FedMPT: dicognito, then a whitelist of technical fields"
DEID_CODES: tuple[tuple[str, str], ...] = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)
# (DICOM keyword, summary field); text fields are technical (vendor, kernel), never free text.
_FIELDS: tuple[tuple[str, str], ...] = (
    ("Modality", "modality"),
    ("Manufacturer", "manufacturer"),
    ("ManufacturerModelName", "model"),
    ("ConvolutionKernel", "kernel"),
    ("KVP", "kvp"),
    ("SliceThickness", "slice_thickness_mm"),
    ("PixelSpacing", "pixel_spacing_mm"),
    ("BodyPartExamined", "body_part"),
    ("PatientSex", "patient_sex"),
    ("StudyDate", "study_date_shifted"),
    ("PatientIdentityRemoved", "patient_identity_removed"),
    ("DeidentificationMethod", "deidentification_method"),
)


def anonymizer_seed(salt: bytes, patient_key: str) -> str:
    """Secret dicognito seed of one patient: HMAC of the patient key under the site salt."""
    return hmac.new(salt, f"dicognito:{patient_key}".encode(), hashlib.sha256).hexdigest()


def deidentify(ds: Dataset, *, seed: str) -> Dataset:
    """Run dicognito on ``ds`` in place and mark it de-identified (PS3.15 E.1.1); returns ``ds``."""
    from dicognito.anonymizer import Anonymizer

    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    Anonymizer(seed=seed).anonymize(ds)
    ds.PatientIdentityRemoved = "YES"  # dicognito sets it only when BurnedInAnnotation is NO
    methods = ds.get("DeidentificationMethod") or []
    methods = [str(m) for m in (methods if isinstance(methods, (list, MultiValue)) else [methods])]
    ds.DeidentificationMethod = [*[m for m in methods if m != DEID_METHOD], DEID_METHOD]
    present = {str(item.get("CodeValue")) for item in ds.get("DeidentificationMethodCodeSequence") or []}
    codes = Sequence(list(ds.get("DeidentificationMethodCodeSequence") or []))
    for value, meaning in DEID_CODES:
        if value not in present:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
            codes.append(item)
    ds.DeidentificationMethodCodeSequence = codes
    return ds


def header_summary(series: OrderedSeries, *, salt: bytes) -> dict[str, Any]:
    """The whitelisted, de-identified header summary of the study whose volume is ``series``.

    Raises
    ------
    OSError, pydicom.errors.InvalidDicomError
        If the first file can no longer be read (the caller then leaves the study without summary).
    """
    first = series.slices[0]
    with reading.open_file(first.path) as handle:
        ds = pydicom.dcmread(handle, stop_before_pixels=True, force=True)
    deidentify(ds, seed=anonymizer_seed(salt, first.patient_key))
    summary: dict[str, Any] = {field: _plain(ds.get(keyword)) for keyword, field in _FIELDS}
    summary["patient_age_years"] = safe_harbor_age(str(ds.get("PatientAge") or ""))
    summary["deidentification_method_codes"] = [
        str(item.get("CodeValue")) for item in ds.DeidentificationMethodCodeSequence]
    summary["transfer_syntax"] = UID(first.pixel.transfer_syntax).name
    summary["enhanced_multiframe"] = first.pixel.n_frames > 1
    summary["series"] = {
        "series_key": series.series_key, "plane": series.plane, "gantry_tilt_deg": series.tilt_deg,
        "n_slices": len(series.slices), "spacing_mm": [round(float(s), 4) for s in series.spacing_mm],
        "shape": list(series.shape),
    }
    return summary


def _plain(value: Any) -> Any:
    """A JSON value for a DICOM value: numbers as floats, multi-values as lists, the rest as text."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple, MultiValue)):
        return [_plain(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else None
    return str(value).strip() or None

