"""Header reading: each kind of unusable file is rejected with its own specific reason."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import blake3
import numpy as np
import pytest
from ingestion_builders import Site, header_of, read_dataset, read_one
from pydicom.pixels import apply_modality_lut

from client_site.ingestion import FileRejected, RejectCode
from client_site.ingestion.pixels import read_hu_frames
from client_site.ingestion.reading import read_file
from client_site.ingestion.walk import walk_files


@pytest.mark.parametrize(
    ("key", "code", "fragment"),
    [
        ("text", RejectCode.NOT_DICOM, "not a DICOM file"),
        ("empty", RejectCode.EMPTY_FILE, "empty file (0 bytes)"),
        ("truncated", RejectCode.TRUNCATED, "truncated: PixelData declares 2048 bytes"),
        ("localizer", RejectCode.LOCALIZER, "ImageType LOCALIZER"),
        ("no_ipp", RejectCode.MISSING_TAG, "missing tag ImagePositionPatient (0020,0032)"),
        ("mr", RejectCode.NOT_CT, "modality is MR, not CT"),
        ("no_meta", RejectCode.NOT_DICOM, "not a DICOM file"),
    ],
)
def test_broken_file_rejected_with_specific_reason(site: Site, key: str, code: RejectCode, fragment: str) -> None:
    # Prepare
    path = site.broken[key]
    # Execute
    with pytest.raises(FileRejected) as caught:
        read_one(path, site.rel(path))
    # Assert
    assert caught.value.code == code
    assert fragment in caught.value.reason


def test_good_slice_header(site: Site) -> None:
    read = read_one(site.thin_paths[0], site.rel(site.thin_paths[0]))
    (header,) = read.slices
    assert (header.rows, header.columns) == (32, 32)
    assert header.position == pytest.approx((-11.2, -11.2, -100.0))
    assert header.has_accession and read.identity.accession == site.jane.accession
    assert header.pixel.direct and header.pixel.offset > 0


def test_hu_matches_independent_modality_lut(site: Site) -> None:
    # Slice 3 is stored with slope 2 / intercept -2048, the others with slope 1 / intercept -1024.
    for k in (0, 3):
        path = site.thin_paths[k]
        ds = read_dataset(path)
        expected = apply_modality_lut(ds.pixel_array, ds)
        volume, failed = read_hu_frames([header_of(path, site.root)])
        got = volume[0]
        assert not failed and got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)
        assert got[2:6, 2:6].max() == -500 + 100 * k  # the per-slice marker, in true HU


def test_walk_lists_every_file_once_and_survives_symlink_loop(tmp_path: Path) -> None:
    # Prepare: a loop (a/loop -> a) and a second link to the same file
    (tmp_path / "dicom" / "a").mkdir(parents=True)
    (tmp_path / "dicom" / "a" / "x").write_bytes(b"1")
    (tmp_path / "dicom" / "a" / "loop").symlink_to(tmp_path / "dicom" / "a", target_is_directory=True)
    (tmp_path / "dicom" / "y").symlink_to(tmp_path / "dicom" / "a" / "x")
    (tmp_path / "dicom" / "dangling").symlink_to(tmp_path / "nowhere")
    # Execute
    walked = list(walk_files(tmp_path / "dicom", tmp_path))
    # Assert
    by_path = {w.rel_path: w for w in walked}
    assert len(by_path) == len(walked) == 3
    assert by_path["dicom/a/x"].rejection is None
    assert by_path["dicom/y"].rejection is not None
    assert by_path["dicom/y"].rejection.code == RejectCode.DUPLICATE_FILE
    assert by_path["dicom/dangling"].rejection is not None
    assert "broken symbolic link" in by_path["dicom/dangling"].rejection.reason


@pytest.mark.parametrize(
    ("mutation", "code", "fragment"),
    [
        ({"Rows": 60000, "Columns": 60000}, RejectCode.TOO_LARGE, "implausible image matrix 60000x60000"),
        ({"PixelData": None}, RejectCode.MISSING_PIXEL_DATA, "missing PixelData (7FE0,0010)"),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.2.1"}, RejectCode.MALFORMED_TAG,
         "Enhanced CT: PerFrameFunctionalGroupsSequence (5200,9230) has 0 item(s)"),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, RejectCode.UNSUPPORTED_SOP_CLASS,
         "'Secondary Capture Image Storage' is not CT Image Storage"),
        ({"RescaleIntercept": None}, RejectCode.MISSING_TAG, "missing tag RescaleIntercept (0028,1052)"),
        ({"SeriesInstanceUID": None}, RejectCode.MISSING_TAG, "missing tag SeriesInstanceUID (0020,000E)"),
        ({"ImageOrientationPatient": [1, 0, 0, 1, 0, 0]}, RejectCode.MALFORMED_TAG, "not two orthogonal unit vectors"),
    ],
)
def test_mutated_slice_rejected(
    site: Site, tmp_path: Path, mutation: dict[str, object], code: RejectCode, fragment: str
) -> None:
    # Prepare: a good slice with one header defect
    ds = read_dataset(site.thin_paths[0])
    for keyword, value in mutation.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    path = tmp_path / "mutated"
    ds.save_as(path, enforce_file_format=True)
    # Execute
    with pytest.raises(FileRejected) as caught:
        read_one(path, "dicom/mutated")
    # Assert
    assert caught.value.code == code
    assert fragment in caught.value.reason


@pytest.mark.filterwarnings("ignore:Invalid value for VR IS")
def test_unconvertible_tag_value_is_a_rejection_not_a_crash(site: Site, tmp_path: Path) -> None:
    # Prepare: NumberOfFrames (0028,0008) IS "1" patched to "x" in the file's bytes
    ds = read_dataset(site.thin_paths[0])
    ds.NumberOfFrames = 1
    path = tmp_path / "bad_frames"
    ds.save_as(path, enforce_file_format=True)
    good = b"\x28\x00\x08\x00IS\x02\x001 "
    data = path.read_bytes()
    assert data.count(good) == 1
    path.write_bytes(data.replace(good, b"\x28\x00\x08\x00IS\x02\x00x "))
    # Execute
    with pytest.raises(FileRejected) as caught:
        read_one(path, "dicom/bad_frames")
    # Assert
    assert caught.value.code == RejectCode.CORRUPT_HEADER
    assert "malformed DICOM header" in caught.value.reason


def test_identity_values_are_decoded_with_the_file_character_set(site: Site, tmp_path: Path) -> None:
    # Names and IDs are looked up by tag number; they must still go through the file's
    # SpecificCharacterSet (Latin-1 here), as the names that scrub reports must match the report text.
    ds = read_dataset(site.thin_paths[0])
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName, ds.PatientID = "Müller^Jürgen", "PÄT-7"
    ds.ReferringPhysicianName, ds.OperatorsName = "Ødegård^Åse", ["Núñez^José", "Weiß^Grete"]
    path = tmp_path / "latin1.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert "Müller".encode("latin-1") in path.read_bytes()  # stored as Latin-1 bytes, not UTF-8

    identity = read_one(path, "latin1.dcm").identity

    assert identity.patient_id == "PÄT-7"
    assert {"Müller^Jürgen", "Ødegård^Åse", "Núñez^José", "Weiß^Grete"} <= set(identity.names)


def test_content_key_is_keyed_by_the_salt_and_depends_on_the_bytes_only(site: Site, tmp_path: Path) -> None:
    # Prepare: the same bytes under another name, and one byte of the pixels changed
    path = site.thin_paths[0]
    copy, changed = tmp_path / "copy.dcm", tmp_path / "changed.dcm"
    data = path.read_bytes()
    copy.write_bytes(data)
    changed.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    salt, other_salt = b"s" * 32, b"t" * 32
    # Execute
    key = read_file(path, "a.dcm", salt=salt).content_key
    # Assert: a 256-bit keyed BLAKE3 of the file's bytes: not the unkeyed hash nor the HMAC-SHA256 of earlier versions
    assert read_file(copy, "b.dcm", salt=salt).content_key == key and len(key) == 64
    assert read_file(changed, "a.dcm", salt=salt).content_key != key
    assert read_file(path, "a.dcm", salt=other_salt).content_key != key
    assert key not in (blake3.blake3(data).hexdigest(), hmac.new(salt, data, hashlib.sha256).hexdigest())
