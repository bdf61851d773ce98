"""Deterministic writers for the non-DICOM site files, and the PHI inventory of a site.

Everything is written byte-for-byte reproducibly (fixed CSV line endings, zip entries with
a fixed timestamp), so the same seed gives identical files.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pydicom

from .identities import name_forms
from .reports import parse_report_header

RECORD_COLUMNS: tuple[str, ...] = (
    "accession", "patient_id", "patient_name", "birth_date", "age", "sex", "symptoms",
    "wbc", "crp", "procalcitonin", "spo2", "eosinophils", "current_medications", "medications",
)
"""Columns of ``clinical/records.csv`` (docs/contracts.md section 3)."""

GENERATED_DIRS: tuple[str, ...] = ("dicom", "reports", "clinical", "reference", "truth")
"""Top-level folders of a site directory that the generator owns."""


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """UTF-8 CSV with "\\n" line endings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Compressed ``.npz`` readable by ``numpy.load``, with reproducible bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


_PN_KEYS = ("Patient", "Referring physician", "Radiologist")
_ID_KEYS = ("Accession", "Patient ID", "Birth date")


def phi_values(site_dir: Path) -> set[str]:
    """Every PHI string the generator wrote into a site's files, for leak tests.

    Names in every spelling the generator uses (``FAMILY^GIVEN``, "Given Family",
    ideographic forms), patient IDs (MRNs), accession numbers, birth dates (YYYYMMDD),
    the institution name and the names of referring physicians and radiologists. Exam
    dates and UIDs are not included.

    Parameters
    ----------
    site_dir : pathlib.Path
        A site directory written by ``generate_consortium``.

    Returns
    -------
    set[str]
        Non-empty strings; search for them verbatim.
    """
    site_dir = Path(site_dir)
    values: set[str] = set()
    records = site_dir / "clinical" / "records.csv"
    if records.exists():
        with records.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                values.update({row["patient_id"], row["birth_date"], row["accession"]})
                values.update(name_forms(row["patient_name"]) or {row["patient_name"]})
    for report in sorted((site_dir / "reports").glob("*.txt")):
        header = parse_report_header(report.read_text(encoding="utf-8"))
        values.update(header.get(k, "") for k in _ID_KEYS)
        for key in _PN_KEYS:
            values.update(name_forms(header.get(key, "")))
    for folder in sorted({p.parent for p in (site_dir / "dicom").rglob("*.dcm")}):
        ds = pydicom.dcmread(next(iter(sorted(folder.glob("*.dcm")))), stop_before_pixels=True)
        values.update(str(ds.get(k, "")) for k in ("PatientID", "AccessionNumber", "PatientBirthDate",
                                                    "InstitutionName"))
        for key in ("PatientName", "ReferringPhysicianName"):
            values.update(name_forms(str(ds.get(key, ""))))
    values.discard("")
    return values
