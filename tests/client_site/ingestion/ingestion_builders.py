"""Builders for tiny synthetic CT series, reports and site folders used by the ingestion tests."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from client_site.ingestion import PreprocessConfig
from client_site.ingestion.reading import FileRead, read_file
from client_site.ingestion.slices import SliceHeader

SALT = bytes(range(32))  # a fixed site salt for tests that read files directly
INSTITUTION = "SAINT ELSEWHERE GENERAL HOSPITAL"
STANDARD_IOP = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@dataclass(frozen=True)
class Person:
    """PHI of one synthetic patient and study."""

    name: str = "DOE^JANE"
    patient_id: str = "MRN0012345"
    birth_date: str = "19560312"
    accession: str = "ACC98765"
    study_date: str = "20240115"
    referring: str = "SMITH^JOHN"
    radiologist: str = "WANG^LI"
    age: str = "67"  # as the EHR extract writes it
    study_uid: str = field(default_factory=generate_uid)

    def phi_strings(self) -> list[str]:
        """Strings that must never reach the cache."""
        family, given = self.name.split("^")
        return [self.name, family, given, f"{given} {family}", self.patient_id, self.birth_date,
                self.accession, self.study_date, self.study_uid, INSTITUTION, "SMITH", "WANG"]


def phantom(n_slices: int = 8, size: int = 32) -> np.ndarray:
    """(n, size, size) int HU volume: air, a 40 HU body disc, a 700 HU bone spot, a per-slice marker.

    The marker (rows 2-5, cols 2-5) is -500 + 100 * k in slice k (ascending z), so the slice order
    can be read back from the pixels. All values are even so slope-2 storage is exact.
    """
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size * 0.4) ** 2
    volume = np.full((n_slices, size, size), -1000, dtype=np.int32)
    volume[:, disc] = 40
    volume[:, size // 2 - 2: size // 2 + 2, size // 2 + 4: size // 2 + 8] = 700
    for k in range(n_slices):
        volume[k, 2:6, 2:6] = -500 + 100 * k
    return volume


def write_slice(
    path: Path,
    hu: np.ndarray,
    *,
    person: Person,
    series_uid: str,
    position: tuple[float, float, float],
    instance_number: int,
    orientation: tuple[float, ...] = STANDARD_IOP,
    pixel_spacing: float = 0.7,
    slope: int = 1,
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    modality: str = "CT",
    drop: tuple[str, ...] = (),
) -> str:
    """Write one CT slice holding ``hu`` with PHI tags; returns its SOPInstanceUID."""
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
    ds.Modality, ds.ImageType = modality, list(image_type)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = person.name, person.patient_id, person.birth_date
    ds.PatientSex, ds.InstitutionName = "F", INSTITUTION
    ds.ReferringPhysicianName = person.referring
    ds.AccessionNumber, ds.StudyDate = person.accession, person.study_date
    ds.StudyInstanceUID, ds.SeriesInstanceUID = person.study_uid, series_uid
    ds.SeriesNumber, ds.InstanceNumber = 1, instance_number
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [pixel_spacing, pixel_spacing]
    ds.SliceThickness = 2.5
    intercept = -1024 * slope
    stored = ((hu - intercept) // slope).astype(np.uint16)
    ds.set_pixel_data(stored, "MONOCHROME2", 12, generate_instance_uid=False)
    ds.RescaleIntercept, ds.RescaleSlope = intercept, slope
    for keyword in drop:
        delattr(ds, keyword)
    ds.save_as(path, enforce_file_format=True)
    return sop_uid


def write_series(
    folder: Path,
    person: Person,
    *,
    hu: np.ndarray | None = None,
    spacing: float = 2.5,
    skip: tuple[int, ...] = (),
    rng: np.random.Generator,
    orientation: tuple[float, ...] = STANDARD_IOP,
) -> tuple[str, list[Path]]:
    """Write an axial series with shuffled file names and scrambled InstanceNumbers.

    Returns the SeriesInstanceUID and the file paths (index k = slice k, ascending z;
    skipped slices are left out of the list).
    """
    hu = phantom() if hu is None else hu
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    numbers = rng.permutation(len(hu)) + 1
    paths = []
    for k in range(len(hu)):
        if k in skip:
            continue
        path = folder / f"IMG{rng.integers(10**8):08d}"
        slope = 2 if k == 3 else 1  # one slice with another rescale, to check per-slice HU
        write_slice(path, hu[k], person=person, series_uid=series_uid, position=(-11.2, -11.2, -100.0 + spacing * k),
                    instance_number=int(numbers[k]), orientation=orientation, slope=slope)
        paths.append(path)
    return series_uid, paths


def write_report(path: Path, person: Person, *, accession: str | None = None, language: str = "en") -> None:
    """Write a report with a contracts.md section 2 header and a body that repeats the PHI."""
    family, given = person.name.split("^")
    body = (
        f"FINDINGS: Patient {given.title()} {family.title()} ({person.patient_id}), born 1956-03-12, "
        f"seen on {person.study_date}. Referred by Dr. {person.referring.split('^')[0].title()}. "
        "A 12 mm solid nodule in the right upper lobe.\n"
        f"IMPRESSION: Pulmonary nodule. Compare with prior CT of {family}, {given}.\n"
    )
    header = (
        f"Accession: {accession or person.accession}\nPatient: {person.name}\nPatient ID: {person.patient_id}\n"
        f"Birth date: {person.birth_date}\nExam date: {person.study_date}\n"
        f"Referring physician: {person.referring}\nRadiologist: {person.radiologist}\nLanguage: {language}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + body, encoding="utf-8")


def write_clinical(path: Path, people: list[Person]) -> None:
    """records.csv with one row per person (contracts.md section 3)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["accession,patient_id,patient_name,birth_date,age,sex,symptoms,wbc,crp,procalcitonin,spo2,"
             "eosinophils,current_medications,medications"]
    for p in people:
        lines.append(f"{p.accession},{p.patient_id},{p.name},{p.birth_date},{p.age},F,cough;fever,11.2,35,0.4,94,"
                     "0.1,warfarin 5 mg,amoxicillin;ibuprofen")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def copy_testdata(name: str, target: Path) -> Path:
    """Copy one of pydicom's bundled test files to ``target``."""
    source = get_testdata_file(name)
    if source is None:
        raise FileNotFoundError(f"pydicom test file {name} is not installed")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def truncate_copy(source: Path, target: Path, keep_fraction: float = 0.6) -> Path:
    """Copy ``source`` to ``target`` keeping only the first part of its bytes."""
    data = source.read_bytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data[: int(len(data) * keep_fraction)])
    return target


def read_one(path: Path, rel_path: str | None = None) -> FileRead:
    """``read_file`` with the test salt."""
    return read_file(path, rel_path or path.name, salt=SALT)


def header_of(path: Path, root: Path) -> SliceHeader:
    """The (single) slice header of a classic CT file, path reported relative to ``root``."""
    (header,) = read_one(path, path.relative_to(root).as_posix()).slices
    return header


def read_dataset(path: Path) -> Dataset:
    """Full pydicom read (for independent checks)."""
    return pydicom.dcmread(path)


# Native grid of the phantom, so that the cached volume can be compared voxel by voxel.
NATIVE = PreprocessConfig(spacing_mm=(2.5, 0.7, 0.7), shape=(8, 32, 32))


@dataclass
class Site:
    """A built site directory and what the tests need to know about it."""

    root: Path
    jane: Person
    rick: Person
    thin_paths: list[Path]
    thick_paths: list[Path]
    gap_paths: list[Path]
    broken: dict[str, Path] = field(default_factory=dict)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def build_site(root: Path, seed: int = 0) -> Site:
    """Build the test site under ``root``.

    Jane: a thin (2.5 mm) and a thick (5 mm) complete series, a report and a clinical row.
    Rick: one series with slice 4 missing (gap) and a report. Plus an orphan report and the
    broken files of ``Site.broken`` (text, empty, truncated, localizer, no position, MR, a
    single CT slice, a meta-less file).
    """
    rng = np.random.default_rng(seed)
    jane, rick = Person(), Person(name="ROE^RICHARD", patient_id="MRN0099999", birth_date="19480101",
                                  accession="ACC55555", study_date="20240220")
    phi_dir = root / "dicom" / "DOE_JANE_MRN0012345" / "19560312"
    _, thin = write_series(phi_dir / "thin", jane, rng=rng)
    _, thick = write_series(phi_dir / "thick", jane, rng=rng, spacing=5.0, hu=phantom(n_slices=4))
    _, gap = write_series(root / "dicom" / "rick", rick, rng=rng, skip=(4,))
    broken = {
        "text": root / "dicom" / "junk" / "notes.dcm",
        "empty": root / "dicom" / "junk" / "empty.dcm",
        "truncated": root / "dicom" / "junk" / "slice_copy.dcm",
        "localizer": root / "dicom" / "junk" / "scout",
        "no_ipp": root / "dicom" / "junk" / "no_position",
        "mr": root / "dicom" / "testdata" / "MR_small.dcm",
        "ct_single": root / "dicom" / "testdata" / "CT_small.dcm",
        "no_meta": root / "dicom" / "testdata" / "no_meta.dcm",
    }
    broken["text"].parent.mkdir(parents=True)
    broken["text"].write_text("this is a text file, not an image\n")
    broken["empty"].write_bytes(b"")
    truncate_copy(thin[2], broken["truncated"])
    write_slice(broken["localizer"], phantom()[0], person=jane, series_uid="1.2.3.99.1", position=(0.0, 0.0, 0.0),
                instance_number=1, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    write_slice(broken["no_ipp"], phantom()[0], person=jane, series_uid="1.2.3.99.2", position=(0.0, 0.0, 0.0),
                instance_number=1, drop=("ImagePositionPatient",))
    for name in ("MR_small.dcm", "CT_small.dcm", "no_meta.dcm"):
        copy_testdata(name, root / "dicom" / "testdata" / name)
    write_report(root / "reports" / "r_0001.txt", jane)
    write_report(root / "reports" / "r_0002.txt", rick)
    write_report(root / "reports" / "r_0003.txt", jane, accession="ACC00000")
    write_clinical(root / "clinical" / "records.csv", [jane, rick])
    return Site(root=root, jane=jane, rick=rick, thin_paths=thin, thick_paths=thick, gap_paths=gap, broken=broken)


def write_structured_report(path: Path, study: Dataset | Person, text: str, *, observer: str = "") -> Path:
    """pydicom's Basic Text SR moved into a study (patient, StudyInstanceUID, accession of ``study``, a
    header or a :class:`Person`), holding ``text`` as its Findings and ``observer`` as a PNAME item."""
    sr = pydicom.dcmread(get_testdata_file("reportsi.dcm"))
    if isinstance(study, Person):
        values = {"PatientName": study.name, "PatientID": study.patient_id, "StudyInstanceUID": study.study_uid,
                  "AccessionNumber": study.accession, "StudyDate": study.study_date,
                  "ReferringPhysicianName": study.referring}
    else:
        values = {k: study.get(k) for k in ("PatientName", "PatientID", "StudyInstanceUID", "AccessionNumber",
                                            "StudyDate", "ReferringPhysicianName")}
    for keyword, value in values.items():
        setattr(sr, keyword, value)
    sr.SeriesInstanceUID = generate_uid()
    sr.SOPInstanceUID = sr.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    sr.ContentSequence = [_sr_item("TEXT", "Findings", TextValue=text)]
    if observer:
        sr.ContentSequence.append(_sr_item("PNAME", "Person Observer Name", PersonName=observer))
    path.parent.mkdir(parents=True, exist_ok=True)
    sr.save_as(path)
    return path


def _sr_item(value_type: str, name: str, **value: str) -> Dataset:
    item, concept = Dataset(), Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = "121071", "DCM", name
    item.RelationshipType, item.ValueType = "CONTAINS", value_type
    item.ConceptNameCodeSequence = [concept]
    for keyword, text in value.items():
        setattr(item, keyword, text)
    return item
