"""Real-world DICOM: pydicom's bundled compressed files, Enhanced CT, tilt, reformats, odd pixels and tags.

HU is checked against values read independently with pydicom (``dcmread().pixel_array`` and
``apply_modality_lut``, or the functional-group rescale for Enhanced CT), and geometry in patient
coordinates against an analytic phantom.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from dicom_variants import (
    ROD,
    SPHERE,
    relabel_as_ct,
    write_enhanced_ct,
    write_jpeg_baseline_series,
    write_raw_dataset,
    write_world_series,
)
from ingestion_builders import NATIVE, Person, phantom, read_one, write_series, write_slice
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut

from client_site.ingestion import WINDOWS, FileRejected, IngestResult, PreprocessConfig, RejectCode, ingest_site
from client_site.ingestion.preprocess import preprocess_with_affine
from client_site.ingestion.series import OrderedSeries, load_hu_volume, order_series
from client_site.pseudonym import load_or_create_salt, pseudonymize

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
# (pydicom test file, its transfer syntax); files from the optional pydicom-data package are skipped without it.
REAL_FILES = [
    ("693_J2KI.dcm", "JPEG 2000 Image Compression"),
    ("J2K_pixelrep_mismatch.dcm", "JPEG 2000 Image Compression (Lossless Only)"),
    ("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS Lossless Image Compression"),
    ("MR_small_RLE.dcm", "RLE Lossless"),
    ("JPGExtended.dcm", "JPEG Extended (Process 2 and 4)"),
    ("JPEG-LL.dcm", "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])"),
    ("MR_small_bigendian.dcm", "Explicit VR Big Endian"),
    ("bad_sequence.dcm", "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])"),
    ("693_J2KR.dcm", "JPEG 2000 Image Compression (Lossless Only)"),
]


def _need(name: str) -> None:
    if get_testdata_file(name) is None:
        pytest.fail(f"{name} needs the pydicom-data package (in the dev extra: pip install -e '.[dev]')")


def _series(paths: list[Path]) -> OrderedSeries:
    return order_series([h for p in paths for h in read_one(p, p.name).slices])


def _pydicom_hu(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return np.asarray(apply_modality_lut(ds.pixel_array, ds), dtype=np.float32)


@pytest.mark.parametrize(("name", "syntax"), REAL_FILES)
def test_real_codestream_decodes_to_independent_hu(tmp_path: Path, name: str, syntax: str) -> None:
    # Prepare: three CT slices carrying the test file's own PixelData bytes
    _need(name)
    paths = relabel_as_ct(name, tmp_path, Person())
    # Execute
    series = _series(paths)
    volume = load_hu_volume(series)
    # Assert
    assert pydicom.dcmread(paths[0]).file_meta.TransferSyntaxUID.name == syntax
    for k, header in enumerate(series.slices):
        np.testing.assert_array_equal(volume[k], _pydicom_hu(header.path))


def test_lossless_jpeg2000_equals_the_uncompressed_original(tmp_path: Path) -> None:
    # 693_UNCR (read straight from the file) and 693_J2KR (through the decoder) hold the same image.
    for name in ("693_UNCR.dcm", "693_J2KR.dcm", "693_J2KI.dcm"):
        _need(name)
    raw = load_hu_volume(_series(relabel_as_ct("693_UNCR.dcm", tmp_path / "u", Person())))
    lossless = load_hu_volume(_series(relabel_as_ct("693_J2KR.dcm", tmp_path / "r", Person())))
    lossy = load_hu_volume(_series(relabel_as_ct("693_J2KI.dcm", tmp_path / "i", Person())))
    np.testing.assert_array_equal(raw, lossless)
    assert not np.array_equal(raw, lossy) and np.corrcoef(raw.ravel(), lossy.ravel())[0, 1] > 0.99


def test_real_enhanced_ct_frames_from_functional_groups() -> None:
    # Prepare: eCT_Supplemental.dcm (pydicom-data): 2 frames, geometry and rescale only in functional groups
    _need("eCT_Supplemental.dcm")
    path = Path(get_testdata_file("eCT_Supplemental.dcm"))
    ds = pydicom.dcmread(path)
    shared = ds.SharedFunctionalGroupsSequence[0]
    rescale = shared.PixelValueTransformationSequence[0]
    # Execute
    read = read_one(path, "dicom/eCT.dcm")
    volume = load_hu_volume(OrderedSeries(slices=read.slices, slice_spacing=10.0, affine=np.eye(4)))
    # Assert
    assert len(read.slices) == 2 and [s.pixel.frame for s in read.slices] == [0, 1]
    assert [s.position[2] for s in read.slices] == [-159.0, -149.0]
    assert read.slices[0].pixel_spacing == pytest.approx((0.388672, 0.388672))
    assert read.slices[0].orientation == (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    expected = ds.pixel_array.astype(np.float64) * float(rescale.RescaleSlope) + float(rescale.RescaleIntercept)
    np.testing.assert_array_equal(volume, expected.astype(np.float32))
    with pytest.raises(Exception, match="series has 2 slice"):
        order_series(list(read.slices))


@pytest.mark.parametrize("compress", [False, True])
def test_enhanced_ct_frames_shuffled_with_per_frame_rescale(tmp_path: Path, compress: bool) -> None:
    hu = phantom().astype(np.float32)
    path = tmp_path / "enhanced.dcm"
    write_enhanced_ct(path, Person(), hu, slopes=[1, 1, 2, 1, 1, 1, 1, 1], compress=compress)
    series = _series([path])
    np.testing.assert_array_equal(load_hu_volume(series), hu)
    assert series.spacing_mm == pytest.approx((2.5, 0.7, 0.7))
    assert series.slices[0].pixel.direct is (not compress)


def _centroid_mm(volume: np.ndarray, affine: np.ndarray, mask: np.ndarray) -> np.ndarray:
    idx = np.argwhere(mask).astype(float)
    return (affine[:3, :3] @ idx.mean(axis=0)) + affine[:3, 3]


GEOMETRY = PreprocessConfig(spacing_mm=(5.0, 5.0, 5.0), shape=(16, 32, 32))


@pytest.mark.parametrize(
    ("label", "row", "col", "axis"),
    [
        ("axial", (1, 0, 0), (0, 1, 0), 2),
        ("tilted 20 degrees", (1, 0, 0), (0, np.cos(np.radians(20)), np.sin(np.radians(20))), 2),
        ("coronal", (1, 0, 0), (0, 0, -1), 1),
        ("sagittal", (0, 1, 0), (0, 0, -1), 0),
    ],
)
def test_geometry_lands_in_patient_coordinates(tmp_path: Path, label: str, row: Any, col: Any, axis: int) -> None:
    # Prepare: the analytic phantom sampled in the given plane; slices advance along `axis` (for the tilt: z)
    centres = np.zeros((33, 3))
    centres[:, axis] = np.linspace(-40.0, 40.0, 33)  # covers the rod (x 22..38) and the ball in every plane
    paths = write_world_series(tmp_path, Person(), row=row, col=col, centres=centres)
    # Execute
    series = _series(paths)
    volume, affine = preprocess_with_affine(load_hu_volume(series), series.affine, GEOMETRY)
    # Assert: the rod and the ball sit where the phantom puts them, in every layout
    assert series.plane == ("axial" if axis == 2 else label)
    assert (series.tilt_deg == pytest.approx(20.0, abs=0.1)) if "tilted" in label else series.tilt_deg == 0.0
    lung, _, bone = volume.astype(np.float32)
    world = np.einsum("ij,jklm->iklm", affine[:3, :3], np.indices(lung.shape).astype(float)) + affine[:3, 3, None, None, None]
    central = (world[0] ** 2 + world[1] ** 2 < 55.0**2) & (np.abs(world[2]) < 20.0)  # away from body edge and slab ends
    rod = _centroid_mm(bone, affine, (bone > 0.5) & central)
    assert rod[:2] == pytest.approx(ROD, abs=2.5), label
    ball = _centroid_mm(lung, affine, (lung > 0.35) & (lung < 0.65) & central)
    assert ball == pytest.approx(SPHERE, abs=3.0), label
    # Layout: slices feet->head, rows anterior->posterior, cols right->left (LPS x, y, z increasing)
    assert affine[2, 0] > 0 and affine[1, 1] > 0 and affine[0, 2] > 0
    if "tilted" in label:  # the rod stays vertical: tilt removed, not kept as a shear
        per_slice = [np.argwhere(bone[k] > 0.5).mean(axis=0) for k in range(len(bone)) if (bone[k] > 0.5).sum() > 3]
        assert np.ptp([p[0] for p in per_slice]) <= 1.0


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[Path]], IngestResult]:
    """A site with one study per variant, ingested once at the phantom's native grid."""
    root = tmp_path_factory.mktemp("variants")
    dicom = root / "dicom"
    rng = np.random.default_rng(3)
    made: dict[str, list[Path]] = {}

    def person(tag: str) -> Person:
        return Person(accession=f"ACC{tag}", patient_id=f"MRN{tag}")

    centres = np.zeros((24, 3))
    centres[:, 2] = np.linspace(-28.75, 28.75, 24)
    made["tilted"] = write_world_series(dicom / "tilt", person("T"), row=(1, 0, 0),
                                        col=(0, np.cos(np.radians(15)), np.sin(np.radians(15))), centres=centres)
    coronal = np.zeros((24, 3))
    coronal[:, 1] = np.linspace(-28.75, 28.75, 24)
    made["coronal_only"] = write_world_series(dicom / "cor", person("C"), row=(1, 0, 0), col=(0, 0, -1),
                                              centres=coronal)
    both = person("B")
    made["axial_of_both"] = write_world_series(dicom / "both_ax", both, row=(1, 0, 0), col=(0, 1, 0), centres=centres)
    made["coronal_of_both"] = write_world_series(dicom / "both_cor", both, row=(1, 0, 0), col=(0, 0, -1),
                                                 centres=coronal)
    made["enhanced"] = [dicom / "enhanced.dcm"]
    write_enhanced_ct(made["enhanced"][0], person("E"), phantom().astype(np.float32), slopes=[1, 2, 1, 1, 1, 1, 1, 1])
    made["jpeg_baseline"] = write_jpeg_baseline_series(dicom / "jpg", person("J"))
    made["jpeg_ls"] = relabel_as_ct("MR_small_jpeg_ls_lossless.dcm", dicom / "jls", person("L"))
    made["odd_rescale"] = relabel_as_ct("MR_small_RLE.dcm", dicom / "rle", person("R"), rescale=(0.37, -1024.5))
    made["zero_slope"] = relabel_as_ct("CT_small.dcm", dicom / "zero", person("Z"), rescale=(0.0, -1024.0))
    _, made["no_optional_tags"] = write_series(dicom / "bare", person("O"), rng=rng)
    for path in made["no_optional_tags"]:
        ds = pydicom.dcmread(path)
        for keyword in ("SliceThickness", "AccessionNumber", "PatientName", "StudyDate", "InstanceNumber",
                        "ImageType", "SeriesNumber", "ReferringPhysicianName", "InstitutionName", "PatientSex"):
            if keyword in ds:
                delattr(ds, keyword)
        ds.save_as(path, enforce_file_format=True)
    _, made["no_meta"] = write_series(dicom / "raw", person("N"), rng=rng)
    for path in made["no_meta"]:
        write_raw_dataset(path, pydicom.dcmread(path))
    made["signed"] = []
    signed_person, uid = person("S"), pydicom.uid.generate_uid()
    for k, slice_hu in enumerate(phantom()):
        path = dicom / "signed" / f"s{k}"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_slice(path, slice_hu, person=signed_person, series_uid=uid, position=(0.0, 0.0, 2.5 * k),
                    instance_number=k + 1)
        ds = pydicom.dcmread(path)
        ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 1, 12, 11
        stored = slice_hu.astype(np.int16)
        garbage = (stored.view(np.uint16) & 0x0FFF) | 0xA000  # junk above BitsStored, as old scanners leave
        ds.PixelData = garbage.tobytes()
        ds.RescaleIntercept = 0
        ds.save_as(path, enforce_file_format=True)
        made["signed"].append(path)
    result = ingest_site(root, root / "cache", config=NATIVE, progress=False)
    return root, made, result


def _files(result: IngestResult) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in json.loads(result.report_path.read_text(encoding="utf-8"))["files"]}


def test_variants_accepted_or_rejected_with_reason(variants: tuple[Path, dict[str, list[Path]], IngestResult]) -> None:
    root, made, result = variants
    files = _files(result)

    def status(key: str) -> set[tuple[str, str | None]]:
        return {(files[p.relative_to(root).as_posix()]["status"], files[p.relative_to(root).as_posix()]["reason"])
                for p in made[key]}

    for key in ("enhanced", "jpeg_baseline", "jpeg_ls", "odd_rescale", "no_optional_tags", "no_meta", "signed",
                "axial_of_both"):
        assert {s for s, _ in status(key)} == {"accepted"}, (key, status(key))
    assert {r for _, r in status("tilted")} == {None}
    assert status("coronal_of_both") == {("rejected", "series not selected: the study has a usable axial series, "
                                          "and reformatted (coronal, sagittal, oblique) series are used only when it "
                                          "has none")}
    assert status("zero_slope") == {("rejected", "RescaleSlope (0028,1053) is 0: HU cannot be computed")}
    series = {e["status"]: e for e in json.loads(result.report_path.read_text())["series"] if e["reason"]
              and "coronal series resampled" in e["reason"]}
    assert "accepted" in series
    tilted = [e for e in json.loads(result.report_path.read_text())["series"]
              if e["reason"] and "gantry tilt 15.0 degrees removed by resampling" in e["reason"]]
    assert len(tilted) == 1 and tilted[0]["status"] == "accepted"


def test_variant_hu_matches_pydicom(variants: tuple[Path, dict[str, list[Path]], IngestResult]) -> None:
    _, made, _ = variants
    for key in ("odd_rescale", "signed", "no_meta", "jpeg_baseline"):
        series = _series(made[key])
        volume = load_hu_volume(series)
        for k, header in enumerate(series.slices):
            ds = pydicom.dcmread(header.path, force=True)
            if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
                ds.file_meta = pydicom.dataset.FileMetaDataset()
                ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
            expected = np.asarray(apply_modality_lut(ds.pixel_array, ds), dtype=np.float32)
            np.testing.assert_array_equal(volume[k], expected, err_msg=key)
    signed = load_hu_volume(_series(made["signed"]))
    np.testing.assert_array_equal(signed, phantom().astype(np.float32))  # sign-extended from 12 bits


def test_enhanced_volume_in_cache_equals_phantom(variants: tuple[Path, dict[str, list[Path]], IngestResult]) -> None:
    # Frames stored head to feet with one frame at slope 2: the cache must still be the windowed phantom.
    root, _, _ = variants
    key = pseudonymize("study", "ACCE", load_or_create_salt(root))
    volume = np.load(root / "cache" / "volumes" / f"{key}.npy").astype(np.float32)
    hu = phantom().astype(np.float32)
    expected = np.stack([np.clip((hu - (lv - w / 2)) / w, 0, 1) for _, lv, w in WINDOWS])
    np.testing.assert_allclose(volume, expected, atol=2e-3)
    summary = json.loads((root / "cache" / "headers" / f"{key}.json").read_text(encoding="utf-8"))
    assert summary["enhanced_multiframe"] is True and summary["series"]["n_slices"] == 8


def test_zero_slope_is_a_file_rejection(tmp_path: Path) -> None:
    (path,) = relabel_as_ct("CT_small.dcm", tmp_path, Person(), n=1, rescale=(0.0, 5.0))
    with pytest.raises(FileRejected) as caught:
        read_one(path)
    assert caught.value.code == RejectCode.MALFORMED_TAG
