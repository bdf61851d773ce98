"""Incremental cache: unchanged inputs are not reprocessed, a changed file rebuilds only its series,
an interrupted run resumes, and a damaged state is rebuilt rather than trusted."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from dicom_variants import relabel_as_ct
from ingestion_builders import NATIVE, Person, phantom, write_report, write_series

from client_site.ingestion import IngestResult, PreprocessConfig, ingest_site, volume_pass
from client_site.pseudonym import load_or_create_salt, pseudonymize

PEOPLE = [Person(name=f"DOE^P{k}", patient_id=f"MRN{k:07d}", accession=f"ACC{k:05d}") for k in range(3)]


def _site(root: Path) -> dict[str, list[Path]]:
    rng = np.random.default_rng(0)
    series = {}
    for person in PEOPLE:
        _, series[person.accession] = write_series(root / "dicom" / person.accession, person, rng=rng)
        write_report(root / "reports" / f"{person.accession}.txt", person)
    return series


def _ingest(root: Path, config: PreprocessConfig = NATIVE) -> IngestResult:
    return ingest_site(root, root / "cache", config=config, progress=False)


def _volume(root: Path, accession: str) -> np.ndarray:
    key = pseudonymize("study", accession, load_or_create_salt(root))
    return np.load(root / "cache" / "volumes" / f"{key}.npy")


def _without_timing(report: dict[str, Any]) -> dict[str, Any]:
    report["summary"] = {k: v for k, v in report["summary"].items() if k not in ("seconds", "seconds_by_step", "cache", "slices_read")}
    return report


def test_unchanged_inputs_are_not_reprocessed(tmp_path: Path) -> None:
    # Prepare
    _site(tmp_path)
    first = _ingest(tmp_path)
    first_report = json.loads(first.report_path.read_text(encoding="utf-8"))
    first_index = first.index_path.read_text(encoding="utf-8")
    # Execute
    second = _ingest(tmp_path)
    # Assert: nothing parsed or built again, same outputs, much faster
    assert (first.n_headers_read, first.n_volumes_built) == (24, 3)
    assert (second.n_headers_read, second.n_headers_reused, second.n_volumes_built, second.n_volumes_reused) == (0, 24, 0, 3)
    assert second.n_slices_read == 0 and second.summary["cache"]["volumes_reused"] == 3
    assert second.index_path.read_text(encoding="utf-8") == first_index
    assert _without_timing(json.loads(second.report_path.read_text(encoding="utf-8"))) == _without_timing(first_report)
    assert second.seconds < first.seconds / 2


def test_changed_file_rebuilds_only_its_series(tmp_path: Path) -> None:
    # Prepare: one slice of the second study gets new pixel values
    series = _site(tmp_path)
    _ingest(tmp_path)
    before = {p.accession: _volume(tmp_path, p.accession) for p in PEOPLE}
    changed = series[PEOPLE[1].accession][5]
    ds = pydicom.dcmread(changed)
    ds.PixelData = (ds.pixel_array + 300).astype(np.uint16).tobytes()
    ds.save_as(changed, enforce_file_format=True)
    # Execute
    result = _ingest(tmp_path)
    # Assert
    assert (result.n_headers_read, result.n_volumes_built, result.n_volumes_reused) == (1, 1, 2)
    assert result.n_slices_read == 8
    for person in PEOPLE:
        same = np.array_equal(_volume(tmp_path, person.accession), before[person.accession])
        assert same is (person is not PEOPLE[1])


def test_new_config_rebuilds_volumes_but_not_headers(tmp_path: Path) -> None:
    _site(tmp_path)
    _ingest(tmp_path)
    result = _ingest(tmp_path, PreprocessConfig(spacing_mm=(5.0, 1.4, 1.4), shape=(4, 16, 16)))
    assert (result.n_headers_read, result.n_volumes_built) == (0, 3)
    assert _volume(tmp_path, PEOPLE[0].accession).shape == (3, 4, 16, 16)


def test_interrupted_run_resumes_where_it_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: the second volume's preprocessing is interrupted (Ctrl-C, or a kill before the next commit)
    _site(tmp_path)
    real = volume_pass.preprocess_volume
    calls: list[int] = []

    def _interrupting(*args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(volume_pass, "preprocess_volume", _interrupting)
    with pytest.raises(KeyboardInterrupt):  # in this process: an interrupt of a worker is a failed build
        ingest_site(tmp_path, tmp_path / "cache", config=NATIVE, progress=False, workers=1)
    monkeypatch.undo()
    # Execute
    result = _ingest(tmp_path)
    # Assert: headers and the finished volume are kept; no half-written file anywhere
    assert (result.n_headers_read, result.n_volumes_reused, result.n_volumes_built) == (0, 1, 2)
    assert result.n_studies == 3 and not list((tmp_path / "cache").rglob("*.tmp"))


def test_damaged_state_or_missing_volume_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _site(tmp_path)
    _ingest(tmp_path)
    key = pseudonymize("study", PEOPLE[2].accession, load_or_create_salt(tmp_path))
    (tmp_path / "cache" / "volumes" / f"{key}.npy").unlink()
    assert _ingest(tmp_path).n_volumes_built == 1
    (tmp_path / "cache" / "state.sqlite").write_bytes(b"this is not a database" * 100)
    result = _ingest(tmp_path)
    assert (result.n_headers_read, result.n_volumes_built, result.n_studies) == (24, 3, 3)
    assert "everything is re-read" in caplog.text


def test_state_of_the_previous_version_is_rebuilt_not_misread(tmp_path: Path) -> None:
    # Prepare: a state.sqlite as version 3 wrote it (HMAC-SHA256 content keys) over the same files
    series = _site(tmp_path)
    _ingest(tmp_path)
    salt = load_or_create_salt(tmp_path)
    db = sqlite3.connect(tmp_path / "cache" / "state.sqlite")
    with db:
        db.execute("UPDATE meta SET value = 'fedmpt-ingest-3' WHERE key = 'version'")
        for path in (p for paths in series.values() for p in paths):
            old_key = hmac.new(salt, path.read_bytes(), hashlib.sha256).hexdigest()
            file_key = pseudonymize("file", path.relative_to(tmp_path).as_posix(), salt)
            db.execute("UPDATE files SET content_key = ? WHERE file_key = ?", (old_key, file_key))
    db.close()
    # Execute
    result = _ingest(tmp_path)
    # Assert: nothing of the old state is trusted; every key is recomputed in the current format
    assert (result.n_headers_read, result.n_headers_reused, result.n_volumes_built) == (24, 0, 3)
    db = sqlite3.connect(tmp_path / "cache" / "state.sqlite")
    keys = [k for (k,) in db.execute("SELECT content_key FROM files")]
    db.close()
    old_keys = {hmac.new(salt, p.read_bytes(), hashlib.sha256).hexdigest() for paths in series.values() for p in paths}
    assert len(keys) == 24 and not old_keys & set(keys)


def test_unreadable_pixels_remembered_until_the_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: a JPEG 2000 series whose second codestream lost its start-of-codestream marker
    paths = relabel_as_ct("J2K_pixelrep_mismatch.dcm", tmp_path / "dicom" / "j2k", Person())
    data = paths[1].read_bytes()
    assert data.count(b"\xff\x4f\xff\x51") == 1
    paths[1].write_bytes(data.replace(b"\xff\x4f\xff\x51", b"\x00\x00\x00\x00"))
    first = _ingest(tmp_path)
    calls: list[int] = []
    real = volume_pass.load_hu_volume
    monkeypatch.setattr(volume_pass, "load_hu_volume", lambda *args: calls.append(1) or real(*args))
    # Execute
    second = _ingest(tmp_path)
    files = {f["path"]: f["reason"] for f in json.loads(second.report_path.read_text())["files"]}
    paths[1].write_bytes(data)  # the export is repaired
    third = _ingest(tmp_path)
    # Assert: the failure was not retried while the file stayed the same
    assert files["dicom/j2k/" + paths[1].name].startswith("pixel data unreadable")
    assert files["dicom/j2k/" + paths[0].name].startswith("series rejected: 1 of 3 slice(s) have unreadable pixel")
    assert first.n_studies == second.n_studies == 0 and third.n_studies == 1
    assert len(calls) == 1 and third.n_headers_read == 1


def test_cached_volume_is_still_the_phantom(tmp_path: Path) -> None:
    _site(tmp_path)
    _ingest(tmp_path)
    _ingest(tmp_path)
    hu = phantom().astype(np.float32)
    lung = np.clip((hu + 1350) / 1500, 0, 1)
    np.testing.assert_allclose(_volume(tmp_path, PEOPLE[0].accession)[0].astype(np.float32), lung, atol=2e-3)
