"""One Orthanc PACS for the PACS tests, filled with the shared synthetic hospital's DICOM, pydicom's test
files and a structured report; each test pulls into a fresh site directory."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "ingestion"))
from ingestion_builders import write_structured_report  # noqa: E402
from orthanc_server import PASSWORD, SITE_AET, USER, Orthanc, start_orthanc  # noqa: E402
from pacs_helpers import Uploaded  # noqa: E402

SR_ACCESSION_STUDY_DATE = "20240307"  # the synthetic study that gets a structured report


@pytest.fixture(scope="session")
def pacs_files(ingested_site: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The synthetic hospital's DICOM, two pydicom files (an MR; a JPEG 2000 CT given a date, an
    accession and a series description) and a Basic Text SR (pydicom's, moved into a synthetic study)."""
    extra = tmp_path_factory.mktemp("pacs-extra")
    files = sorted(p for p in (ingested_site / "dicom").rglob("*") if p.is_file() and _is_dicom(p))
    files.append(Path(get_testdata_file("MR_small.dcm")))
    j2k = pydicom.dcmread(get_testdata_file("693_J2KR.dcm"))
    j2k.StudyDate, j2k.AccessionNumber, j2k.SeriesDescription = "20240101", "PYD693J2K", "Thorax 10mm J2K"
    j2k.save_as(extra / "j2k.dcm")
    files.append(extra / "j2k.dcm")
    ct = next(pydicom.dcmread(p, stop_before_pixels=True) for p in files
              if pydicom.dcmread(p, stop_before_pixels=True).get("StudyDate") == SR_ACCESSION_STUDY_DATE)
    files.append(write_structured_report(extra / "sr.dcm", ct, "Right upper lobe nodule, 6 mm. No effusion."))
    return files


def _is_dicom(path: Path) -> bool:
    try:
        pydicom.dcmread(path, stop_before_pixels=True)
        return True
    except Exception:  # the synthetic export holds non-DICOM files on purpose
        return False


@pytest.fixture(scope="session")
def orthanc(pacs_files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """Orthanc on loopback holding :func:`pacs_files` (but the truncated ones it refuses); fails (never
    skips) when it cannot start."""
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    try:
        for path in pacs_files:
            server.upload(path)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def uploaded(orthanc: Orthanc) -> list[Uploaded]:
    """Header values of every file the PACS stored (to compute what a filtered pull must bring)."""
    out = []
    for path in orthanc.accepted:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        out.append(Uploaded(path=path, study_uid=str(ds.StudyInstanceUID), study_date=str(ds.get("StudyDate", "")),
                            modality=str(ds.Modality), description=str(ds.get("SeriesDescription", "")),
                            accession=str(ds.get("AccessionNumber", ""))))
    return out


@pytest.fixture
def make_pacs_site(tmp_path: Path, orthanc: Orthanc) -> Callable[..., Path]:
    """A site directory with a ``[pacs]`` table (extra keys as arguments) and the password file."""

    def make(protocol: str, *, password: str = PASSWORD, **pacs: object) -> Path:
        site_dir = tmp_path / "site"
        (site_dir / "secrets").mkdir(parents=True, mode=0o700, exist_ok=True)
        secret = site_dir / "secrets" / "pacs-password"
        secret.write_text(password + "\n", encoding="utf-8")
        secret.chmod(0o600)
        table: dict[str, object] = {"protocol": protocol, "calling_aet": SITE_AET}
        if protocol == "dicomweb":
            table.update(url=orthanc.dicomweb_url, user=USER)
        else:
            table.update(host="127.0.0.1", port=orthanc.dicom_port, called_aet="TESTPACS")
        table.update(pacs)
        lines = [f"{key} = {_toml(value)}" for key, value in table.items()]
        (site_dir / "site.toml").write_text('[site]\nname = "pacs-test"\n\n[pacs]\n' + "\n".join(lines) + "\n")
        (site_dir / "dicom").mkdir(exist_ok=True)
        return site_dir

    return make


def _toml(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
