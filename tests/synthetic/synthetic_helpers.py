"""Constants and small readers shared by the synthetic-consortium tests."""

from __future__ import annotations

import csv
from pathlib import Path

import pydicom

TINY = {"n_sites": 2, "patients_per_site": 3, "seed": 7, "matrix": 64, "progress": False}
"""Arguments of the tiny consortium the session fixtures generate."""


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts."""
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def read_axial_series(site_dir: Path) -> dict[str, list[pydicom.Dataset]]:
    """Accession -> primary axial slices (SeriesNumber 2, pixels loaded) sorted by ascending z.

    Localizers (SeriesNumber 1) and thick reconstructions (SeriesNumber 3) are left out.
    """
    series: dict[str, list[pydicom.Dataset]] = {}
    for path in sorted((site_dir / "dicom").rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.filename = str(path)
        if "LOCALIZER" not in ds.ImageType and ds.SeriesNumber == 2:
            series.setdefault(ds.AccessionNumber, []).append(ds)
    for slices in series.values():
        slices.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    return series
