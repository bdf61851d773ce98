"""DICOM files: tags, geometry, stored HU, and alignment of the truth masks with the pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from scipy.ndimage import binary_erosion, binary_fill_holes
from synthetic_helpers import read_csv

from synthetic import dicom_writer, site_profiles
from synthetic.anatomy import sample_anatomy
from synthetic.dicom_writer import StudyHeader, write_series
from synthetic.patient import has_thick_series
from synthetic.render import plan_positioning, render_series
from synthetic.scenarios import CasePlan, build_lesions

REQUIRED = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "InstitutionName",
    "ReferringPhysicianName", "AccessionNumber", "StudyDate", "StudyInstanceUID",
    "SeriesInstanceUID", "SOPInstanceUID", "SeriesNumber", "InstanceNumber", "PixelSpacing",
    "SliceThickness", "ImageOrientationPatient", "ImagePositionPatient", "RescaleSlope",
    "RescaleIntercept", "KVP", "Manufacturer", "ManufacturerModelName", "ConvolutionKernel",
)


def _hu(slices: list[pydicom.Dataset]) -> np.ndarray:
    return np.stack([apply_modality_lut(d.pixel_array, d) for d in slices]).astype(np.float64)


def test_files_are_ct_image_storage_with_all_tags(consortium: list[Path]) -> None:
    for site_dir, profile in zip(consortium, site_profiles(len(consortium)), strict=True):
        for path in (site_dir / "dicom").rglob("*.dcm"):
            assert path.name.startswith("IM") and len(path.relative_to(site_dir).parts) == 4
            ds = pydicom.dcmread(path)
            scout = "LOCALIZER" in ds.ImageType
            assert ds.file_meta.TransferSyntaxUID == (ExplicitVRLittleEndian if scout else profile.transfer_syntax)
            assert ds.file_meta.MediaStorageSOPClassUID == CTImageStorage == ds.SOPClassUID
            assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
            assert ds.Modality == "CT" and ds.BitsAllocated == 16
            if "LOCALIZER" not in ds.ImageType:
                assert all(k in ds for k in REQUIRED)


def test_sites_store_pixels_differently(axial: dict[str, dict[str, list[pydicom.Dataset]]]) -> None:
    first = {site: next(iter(series.values()))[0] for site, series in axial.items()}
    a, b = first["hospital-a"], first["hospital-b"]
    assert (a.PixelRepresentation, float(a.RescaleIntercept)) == (0, -1024.0)
    assert (b.PixelRepresentation, float(b.RescaleIntercept)) == (1, 0.0)
    assert a.Manufacturer != b.Manufacturer and a.SliceThickness != b.SliceThickness
    assert b.SpecificCharacterSet == "ISO_IR 192" and "=" in str(b.PatientName)


def test_geometry_is_axial_and_contiguous(axial: dict[str, dict[str, list[pydicom.Dataset]]]) -> None:
    for series in axial.values():
        for slices in series.values():
            z = np.array([float(d.ImagePositionPatient[2]) for d in slices])
            assert np.allclose(np.diff(z), float(slices[0].SliceThickness))
            assert 255.0 <= len(z) * float(slices[0].SliceThickness) <= 320.0
            orientations = {tuple(float(v) for v in d.ImageOrientationPatient) for d in slices}
            assert orientations == {(1, 0, 0, 0, 1, 0)}
            assert len({d.SOPInstanceUID for d in slices}) == len(slices)
            assert len({d.InstanceNumber for d in slices}) == len(slices)
            assert len({d.SeriesInstanceUID for d in slices}) == 1


def test_lung_attenuation_is_calibrated_per_site(
    consortium: list[Path], axial: dict[str, dict[str, list[pydicom.Dataset]]]
) -> None:
    checked = 0
    for site_dir, profile in zip(consortium, site_profiles(len(consortium)), strict=True):
        series = axial[site_dir.name]
        for row in read_csv(site_dir / "truth" / "labels.csv"):
            if row["emphysema"] == "1":  # low-attenuation areas shift the lung peak down
                continue
            hu = _hu(series[row["accession"]])
            checked += 1
            # Execute: the aerated-lung peak of the histogram inside the body (away from the
            # blurred skin/air border), where air and padding lie below -940
            body = binary_erosion(np.stack([binary_fill_holes(s > -500) for s in hu]), iterations=2)
            counts, edges = np.histogram(hu[body], bins=np.arange(-940, -600, 10))
            peak = edges[np.argmax(counts)] + 5
            # Assert
            assert abs(peak - (-850 + profile.hu_offset)) <= 60
            assert hu.max() > 500  # bone
    assert checked


def test_written_hu_read_back_exactly(tmp_path: Path) -> None:
    # Prepare: one rendered series per site storage (unsigned raw, signed RLE, signed JPEG 2000 lossless)
    for profile in site_profiles(3):
        rng = np.random.default_rng(5)
        anat = sample_anatomy(rng, female=False, fov_mm=profile.fov_mm, hyperinflated=False,
                              cardiomegaly=False)
        series = render_series(anat, [], profile, plan_positioning(anat, profile, rng), matrix=32, rng=rng)
        header = StudyHeader("DOE^JOHN", "MRN1", "19500101", "M", 70, "ACC1", "20240101", "101500",
                             "ROE^RICHARD", "1.2.3", "1.2.3.4", "1.2.3.5", "1.2.3.6", "CT CHEST")
        # Execute
        paths = write_series(tmp_path / profile.kernel, series, header, profile)
        slices = sorted((pydicom.dcmread(p) for p in paths), key=lambda d: float(d.ImagePositionPatient[2]))
        # Assert
        np.testing.assert_array_equal(_hu(slices), series.hu)
        lung = series.hu[series.lung]
        assert abs(np.mean(lung) - (-850 + profile.hu_offset)) <= 60
        assert np.allclose([float(d.ImagePositionPatient[2]) for d in slices], series.z_positions)


RANGES = {  # plausible mean HU inside each mask, after blur, noise and partial volume
    "nodule": (-450, 200), "consolidation": (-450, 200), "pleural_effusion": (-450, 200),
    "ground_glass_opacity": (-800, -250), "emphysema": (-1100, -880),
}


def test_masks_sit_on_their_lesions(
    consortium: list[Path], axial: dict[str, dict[str, list[pydicom.Dataset]]]
) -> None:
    seen = 0
    for site_dir in consortium:
        series = axial[site_dir.name]
        for row in read_csv(site_dir / "truth" / "labels.csv"):
            hu = _hu(series[row["accession"]])
            masks = np.load(site_dir / "truth" / "masks" / f"{row['accession']}.npz")
            for finding in masks.files:
                # Assert: mean HU of the voxels a mask marks, slices in ascending z
                low, high = RANGES[finding]
                assert low <= hu[masks[finding]].mean() <= high, (row["accession"], finding)
                seen += 1
    assert seen


def test_every_lesion_kind_renders_exclusive_masks_with_its_attenuation() -> None:
    # Prepare: a patient with all five findings
    profile = site_profiles(1)[0]
    rng = np.random.default_rng(11)
    plan = CasePlan("bacterial_pneumonia", 70, "M", 0.6, True, "infective", (True, True), True)
    anat = sample_anatomy(rng, female=False, fov_mm=profile.fov_mm, hyperinflated=True, cardiomegaly=False)
    lesions = build_lesions(anat, plan, rng)
    # Execute
    series = render_series(anat, lesions, profile, plan_positioning(anat, profile, rng), matrix=64, rng=rng)
    # Assert
    assert set(series.masks) == set(RANGES)
    stacked = np.stack(list(series.masks.values()))
    assert stacked.sum(axis=0).max() == 1  # mutually exclusive
    assert not (stacked & ~series.lung[None]).sum() > 0.2 * stacked.sum()  # mostly in the lung
    for finding, mask in series.masks.items():
        low, high = RANGES[finding]
        assert low <= series.hu[mask].mean() <= high, finding


def test_fast_slice_encoder_writes_the_same_bytes_as_pydicom(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: one small series per site profile (plain, and UTF-8 with an ideographic name)
    for profile in site_profiles(3):
        rng = np.random.default_rng(2)
        anat = sample_anatomy(rng, female=True, fov_mm=profile.fov_mm, hyperinflated=False,
                              cardiomegaly=False)
        series = render_series(anat, [], profile, plan_positioning(anat, profile, rng), matrix=32, rng=rng)
        zh = profile.language == "zh"
        header = StudyHeader("ZHANG^WEI=张^伟" if zh else "DOE^JANE", "ZY1", "19500101", "F", 70, "CT1",
                             "20240101", "101500", "WANG^LI=王^丽" if zh else "ROE^RICHARD", "1.2.3",
                             "1.2.3.4", "1.2.3.5", "1.2.3.6", "胸部CT平扫" if zh else "CT CHEST")
        # Execute
        fast = write_series(tmp_path / "fast" / profile.kernel, series, header, profile)
        monkeypatch.setattr(dicom_writer, "check_encoder", _save_and_refuse)
        slow = write_series(tmp_path / "slow" / profile.kernel, series, header, profile)
        monkeypatch.undo()
        # Assert
        assert [p.name for p in fast] == [p.name for p in slow]
        assert all(a.read_bytes() == b.read_bytes() for a, b in zip(fast, slow, strict=True))


def _save_and_refuse(encoder: object, ds: pydicom.Dataset, path: Path, varying: object) -> bool:
    ds.save_as(path, enforce_file_format=True)
    return False


def test_some_studies_also_hold_a_thick_reconstruction(
    consortium: list[Path], axial: dict[str, dict[str, list[pydicom.Dataset]]]
) -> None:
    thick_seen = 0
    for site_dir in consortium:
        for accession, thin in axial[site_dir.name].items():
            folder = Path(thin[0].filename).parent.parent / "SE003"
            assert folder.is_dir() is has_thick_series(accession)
            if not folder.is_dir():
                continue
            thick = sorted((pydicom.dcmread(p) for p in folder.glob("*.dcm")),
                           key=lambda d: float(d.ImagePositionPatient[2]))
            # Assert: same study, own series, twice the thickness, HU = mean of consecutive thin slices
            assert {d.SeriesNumber for d in thick} == {3} and thick[0].AccessionNumber == accession
            assert thick[0].SeriesInstanceUID != thin[0].SeriesInstanceUID
            assert float(thick[0].SliceThickness) == 2 * float(thin[0].SliceThickness)
            pairs = _hu(thin)[: 2 * len(thick)].reshape(len(thick), 2, *thin[0].pixel_array.shape).mean(axis=1)
            np.testing.assert_array_equal(_hu(thick), np.rint(pairs))
            thick_seen += 1
    assert thick_seen


def test_each_export_holds_a_few_broken_files(consortium: list[Path]) -> None:
    for site_dir in consortium:
        dicom = site_dir / "dicom"
        (partial,) = dicom.rglob("*.dcm.part")
        whole = partial.with_name(partial.name.removesuffix(".part")).read_bytes()
        assert whole.startswith(partial.read_bytes()) and len(partial.read_bytes()) < len(whole)
        assert [p.stat().st_size for p in dicom.rglob("IM00000")] == [0]
        assert len(list(dicom.rglob("export.log"))) == 1 and (dicom / "Thumbs.db").stat().st_size == 512
