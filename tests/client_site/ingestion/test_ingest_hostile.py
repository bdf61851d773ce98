"""Hostile and broken input: every file is reported with a specific reason, nothing crashes, memory stays bounded."""

from __future__ import annotations

import json
import os
import shutil
import struct
import tracemalloc
from pathlib import Path
from typing import IO, Any

import numpy as np
import pydicom
import pytest
from dicom_variants import relabel_as_ct
from ingestion_builders import NATIVE, Person, read_one, write_report, write_series
from pydicom.data import get_testdata_files
from typer.testing import CliRunner

from client_site.ingestion import FileRejected, RejectCode, ingest_site, reading

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _files(report_path: Path) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in json.loads(report_path.read_text(encoding="utf-8"))["files"]}


def test_non_utf8_and_very_long_file_names(tmp_path: Path) -> None:
    # Prepare: a Latin-1 file name, a 240-character name, and a deeply nested path
    _, paths = write_series(tmp_path / "dicom" / "s", Person(), rng=np.random.default_rng(0))
    latin1 = os.fsencode(tmp_path / "dicom" / "s") + b"/caf\xe9_\xff.dcm"
    os.rename(paths[0], latin1)
    long_name = "x" * 240
    os.rename(paths[1], paths[1].with_name(long_name))
    deep = tmp_path / "dicom" / "/".join(["d" * 50] * 12)
    deep.mkdir(parents=True)
    shutil.move(paths[2], deep / "slice")
    with open(os.fsencode(tmp_path / "dicom") + b"/junk_\xff.txt", "wb") as handle:
        handle.write(b"not an image")
    # Execute
    result = ingest_site(tmp_path, tmp_path / "cache", config=NATIVE, progress=False)
    # Assert: valid UTF-8 JSON, undecodable bytes shown as \xNN, the series still whole
    files = _files(result.report_path)
    assert files["dicom/s/caf\\xe9_\\xff.dcm"]["status"] == "accepted"
    assert files[f"dicom/s/{long_name}"]["status"] == "accepted"
    assert any(path.endswith("/slice") and entry["status"] == "accepted" for path, entry in files.items())
    assert files["dicom/junk_\\xff.txt"]["reason"].startswith("not a DICOM file")
    assert result.n_studies == 1


def test_unreadable_file_and_folder_are_reported_and_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: tests run as root, where chmod 000 does not stop reads, so the denial is simulated too
    _, paths = write_series(tmp_path / "dicom" / "s", Person(), rng=np.random.default_rng(0))
    locked_dir = tmp_path / "dicom" / "locked"
    locked_dir.mkdir()
    (locked_dir / "hidden.dcm").write_bytes(b"x")
    denied = paths[3]  # a middle slice: the series then has a gap
    denied.chmod(0)
    real_open, real_scandir = reading.open_file, os.scandir

    def _open(path: Path) -> IO[bytes]:
        if Path(path) == denied:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path)

    def _scandir(path: Any = ".") -> Any:
        if Path(path) == locked_dir:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(reading, "open_file", _open)
    monkeypatch.setattr(os, "scandir", _scandir)
    # Execute
    first = ingest_site(tmp_path, tmp_path / "cache", config=NATIVE, progress=False)
    files = _files(first.report_path)
    monkeypatch.undo()
    denied.chmod(0o644)
    second = ingest_site(tmp_path, tmp_path / "cache", config=NATIVE, progress=False)
    # Assert
    assert files["dicom/" + denied.relative_to(tmp_path / "dicom").as_posix()]["reason"] == "cannot read file: Permission denied"
    assert files["dicom/locked/"]["reason"].startswith("folder cannot be listed (Permission denied)")
    assert "1 slice(s) missing" in files["dicom/" + paths[1].relative_to(tmp_path / "dicom").as_posix()]["reason"]
    assert first.n_studies == 0 and second.n_studies == 1  # the denial was not cached
    assert second.n_headers_read == 2 and second.n_headers_reused == len(paths) - 1


def _with_long_element(good: Path, target: Path, length: int) -> Path:
    """Insert an OB element declaring ``length`` bytes before SamplesPerPixel (0028,0002)."""
    data = good.read_bytes()
    at = data.find(b"\x28\x00\x02\x00")
    target.write_bytes(data[:at] + b"\x27\x00\x10\x00OB\x00\x00" + struct.pack("<I", length) + b"abc")
    return target


@pytest.mark.parametrize("streamed", [False, True])
def test_absurd_declared_length_refused_without_allocating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, streamed: bool
) -> None:
    # Prepare: a header element that claims 4 GiB in a 1 kB file; read from memory, or streamed as
    # files above the in-memory limit are
    if streamed:
        monkeypatch.setattr(reading, "_IN_MEMORY_BYTES", 0)
    _, paths = write_series(tmp_path / "s", Person(), rng=np.random.default_rng(0), hu=np.zeros((3, 8, 8), int))
    assert read_one(paths[0]).slices[0].rows == 8  # the streamed path reads good files too
    path = _with_long_element(paths[0], tmp_path / "absurd", 0xFFFFFFF0)
    # Execute
    tracemalloc.start()
    with pytest.raises(FileRejected) as caught:
        read_one(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # Assert
    assert caught.value.code == RejectCode.CORRUPT_HEADER
    assert "declares 4294967280 bytes but the file ends after 3" in caught.value.reason
    assert peak < 16 * 2**20


def test_absurd_frame_count_refused_before_reading_pixels(tmp_path: Path) -> None:
    _, paths = write_series(tmp_path / "s", Person(), rng=np.random.default_rng(0))
    ds = pydicom.dcmread(paths[0])
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
    ds.NumberOfFrames, ds.Rows, ds.Columns = 10**9, 512, 512
    ds.save_as(tmp_path / "huge", enforce_file_format=True)
    with pytest.raises(FileRejected, match="implausible image matrix 512x512x1000000000") as caught:
        read_one(tmp_path / "huge")
    assert caught.value.code == RejectCode.TOO_LARGE


def test_compressed_file_cut_short_is_refused_at_the_header(tmp_path: Path) -> None:
    # An interrupted transfer of a JPEG 2000 slice: the header is whole, the codestream is not.
    (path,) = relabel_as_ct("693_J2KI.dcm", tmp_path, Person(), n=1)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 3 // 5])
    with pytest.raises(FileRejected, match="ends inside its encapsulated") as caught:
        read_one(path)
    assert caught.value.code == RejectCode.TRUNCATED


def test_every_pydicom_test_file_is_reported_and_the_run_completes(tmp_path: Path) -> None:
    # Prepare: pydicom's whole zoo (MR, US, SR, RT, SEG, colour, truncated, no-meta, bad VR, ...), and
    # pydicom-data's when installed, plus reports without studies
    dicom = tmp_path / "dicom"
    sources = [Path(p) for p in get_testdata_files("*") if Path(p).is_file()]
    dicom.mkdir()
    for k, source in enumerate(sources):
        (dicom / f"{k:03d}_{source.name}").symlink_to(source)  # links: no 60 MB copy
    write_report(tmp_path / "reports" / "orphan.txt", Person())
    # Execute
    result = CliRunner().invoke(_cli(), ["ingest", str(tmp_path), "--preset", "tiny", "--qa"])
    # Assert: nothing usable (single CT slices only) -> exit status 1; every file has a specific reason
    assert result.exit_code == 1, result.output
    files = _files(tmp_path / "ingest" / "ingest_report.json")
    assert len(files) == len(sources) + 1
    assert all(entry["status"] == "rejected" and entry["reason"] for entry in files.values())
    reasons = {entry["reason"].split(":")[0].split(" (")[0] for entry in files.values()}
    assert {"modality is MR, not CT", "not a DICOM file", "series rejected"} <= reasons | {
        r.split(",")[0] for r in reasons}
    assert (tmp_path / "cache" / "qa.json").is_file()


def test_cli_exit_status_and_qa_on_a_usable_site(tmp_path: Path) -> None:
    write_series(tmp_path / "dicom" / "s", Person(), rng=np.random.default_rng(0))
    result = CliRunner().invoke(_cli(), ["ingest", str(tmp_path), "--preset", "tiny", "--qa"])
    assert result.exit_code == 0, result.output
    assert "data-QA statistics" in result.output
    assert str(tmp_path / "ingest" / "ingest_report.json") in result.output
    qa = json.loads((tmp_path / "cache" / "qa.json").read_text(encoding="utf-8"))
    assert qa["studies"] == "<5" and qa["files"]["accepted"] == 8
    # A later run without --qa drops the old statistics: they would describe another cache.
    assert CliRunner().invoke(_cli(), ["ingest", str(tmp_path), "--preset", "tiny"]).exit_code == 0
    assert not (tmp_path / "cache" / "qa.json").exists()


def _cli() -> Any:
    from cli.main import app

    return app
