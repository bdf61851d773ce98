"""End to end: ingest the synthetic site and check the cache against docs/contracts.md section 4."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ingestion_builders import (
    INSTITUTION,
    NATIVE,
    Person,
    Site,
    phantom,
    write_clinical,
    write_report,
)

from client_site.ingestion import WINDOWS, IngestResult, SiteLayoutError, ingest_site


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _files_by_path(ingested: IngestResult) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in _load(ingested.report_path)["files"]}


def test_every_input_file_listed_once(site: Site, ingested: IngestResult) -> None:
    # Prepare
    inputs = {p.relative_to(site.root).as_posix() for sub in ("dicom", "reports", "clinical")
              for p in (site.root / sub).rglob("*") if p.is_file()}
    # Execute
    listed = [f["path"] for f in _load(ingested.report_path)["files"]]
    # Assert
    assert len(listed) == len(set(listed))
    assert set(listed) == inputs
    assert ingested.n_files == len(inputs)
    assert ingested.accepted + ingested.rejected == len(inputs)
    assert ingested.summary == _load(ingested.report_path)["summary"]


def test_file_statuses_and_reasons(site: Site, ingested: IngestResult) -> None:
    files = _files_by_path(ingested)
    for path in site.thin_paths:
        assert files[site.rel(path)] == {"path": site.rel(path), "status": "accepted", "reason": None}
    expected = {
        "text": "not a DICOM file", "empty": "empty file (0 bytes)", "truncated": "truncated",
        "localizer": "LOCALIZER", "no_ipp": "missing tag ImagePositionPatient", "mr": "modality is MR, not CT",
        "no_meta": "not a DICOM file", "ct_single": "series has 1 slice(s); at least 3",
    }
    for key, fragment in expected.items():
        entry = files[site.rel(site.broken[key])]
        assert entry["status"] == "rejected" and fragment in entry["reason"], (key, entry)
    for path in site.thick_paths:
        assert files[site.rel(path)]["reason"].startswith("series not selected: the study has a thinner")
    for path in site.gap_paths:
        assert "gap of 5.00 mm" in files[site.rel(path)]["reason"]
    assert files["reports/r_0001.txt"]["status"] == "accepted"
    assert "has no usable series" in files["reports/r_0002.txt"]["reason"]
    assert files["reports/r_0003.txt"]["reason"].startswith("no DICOM study with this Accession")
    assert files["clinical/records.csv"]["status"] == "accepted"


def test_series_and_summary(ingested: IngestResult) -> None:
    report = _load(ingested.report_path)
    statuses = sorted((s["status"], s["n_slices"]) for s in report["series"])
    assert statuses == [("accepted", 8), ("not_selected", 4), ("rejected", 1), ("rejected", 7)]
    accepted = next(s for s in report["series"] if s["status"] == "accepted")
    assert accepted["spacing_mm"] == [2.5, 0.7, 0.7] and accepted["shape"] == [8, 32, 32]
    summary = report["summary"]
    assert summary["studies"] == 1 and summary["patients"] == 1 and summary["studies_with_report"] == 1
    assert summary["rejected_by_reason"]["not_dicom"] == 2
    assert summary["series"] == {"seen": 4, "accepted": 1, "rejected": 2, "not_selected": 1}
    assert summary["clinical"] == {"rows": 2, "linked": 1, "unmatched": 1, "skipped": 0}
    studies = sorted((s["status"], s["has_report"], s["report"], s["clinical"]) for s in report["studies"])
    assert studies == [("accepted", True, "reports/r_0001.txt", True), ("rejected", False, None, False),
                       ("rejected", False, None, False)]


def test_index_and_volume(site: Site, ingested: IngestResult) -> None:
    index = _load(ingested.index_path)
    assert index["preprocess"]["spacing_mm"] == [2.5, 0.7, 0.7] and index["preprocess"]["shape"] == [8, 32, 32]
    (study,) = index["studies"]
    assert set(study) == {"study_key", "patient_key", "volume", "report", "language", "clinical", "native"}
    assert study["native"]["shape"] == list(NATIVE.shape) and np.shape(study["native"]["affine"]) == (4, 4)
    assert study["volume"] == f"volumes/{study['study_key']}.npy"
    assert study["language"] == "en" and "12 mm solid nodule" in study["report"]
    assert set(study["clinical"]) == {"age", "sex", "symptoms", "labs", "current_medications", "medications"}
    volume = np.load(ingested.cache_dir / study["volume"], allow_pickle=False)
    assert volume.dtype == np.float16 and volume.shape == (3, *NATIVE.shape)
    assert float(volume.min()) >= 0.0 and float(volume.max()) <= 1.0
    # Native grid: the cache must equal the windowed phantom, slices ascending in z.
    hu = phantom().astype(np.float32)
    expected = np.stack([np.clip((hu - (lv - w / 2)) / w, 0, 1) for _, lv, w in WINDOWS])
    np.testing.assert_allclose(volume.astype(np.float32), expected, atol=2e-3)


def test_no_phi_in_cache(site: Site, ingested: IngestResult) -> None:
    # Prepare: every identifying string of the site, plus PHI-laden folder names of the export
    phi = {*site.jane.phi_strings(), *site.rick.phi_strings(), "DOE_JANE_MRN0012345", INSTITUTION, "Richard"}
    texts = {path.relative_to(ingested.cache_dir).as_posix(): path.read_bytes().decode("latin-1")
             for path in ingested.cache_dir.rglob("*") if path.is_file()}
    texts["file names"] = "\n".join(texts)
    # Assert: the path-bearing report lives outside the cache; the cache's summary is that report minus paths
    assert ingested.report_path.parent == site.root / "ingest" and "ingest_report.json" not in texts
    assert "DOE_JANE_MRN0012345" in ingested.report_path.read_text(encoding="utf-8")  # IT can find the files
    assert any(name.endswith(".npy") for name in texts)
    for name, text in texts.items():
        for value in phi:
            assert value.lower() not in text.lower(), f"{value!r} found in cache/{name}"
    assert not (ingested.cache_dir / "secrets").exists()
    report, summary = _load(ingested.report_path), _load(ingested.summary_path)
    assert summary == {"series": report["series"], "summary": report["summary"],
                       "studies": [{k: v for k, v in s.items() if k != "report"} for s in report["studies"]]}


def test_rerun_is_stable_and_removes_stale_volumes(
    site: Site, ingested: IngestResult, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare: a second cache with a stale volume and a leftover temporary file
    cache = site.root / "cache_rerun"
    (cache / "volumes").mkdir(parents=True)
    (cache / "volumes" / "sdeadbeef.npy").write_bytes(b"old")
    (cache / "volumes" / ".x.npy.123.tmp").write_bytes(b"half")
    # Execute
    result = ingest_site(site.root, cache, config=NATIVE, progress=True)
    # Assert: progress bars went to stderr; same salt, so the same keys and the same volume
    assert "DICOM headers" in capsys.readouterr().err
    assert _load(result.index_path)["studies"] == _load(ingested.index_path)["studies"]
    assert sorted(p.name for p in (cache / "volumes").iterdir()) == sorted(
        p.name for p in (ingested.cache_dir / "volumes").iterdir())
    assert not list(cache.rglob("*.tmp"))
    shutil.rmtree(cache)


def test_layout_errors(tmp_path: Path, site: Site) -> None:
    with pytest.raises(SiteLayoutError, match="put the PACS export there"):
        ingest_site(tmp_path, tmp_path / "cache", progress=False)
    with pytest.raises(SiteLayoutError, match="inside"):
        ingest_site(site.root, site.root / "dicom" / "cache", progress=False)


def test_salt_is_private(site: Site, ingested: IngestResult) -> None:
    salt = site.root / "secrets" / "salt"
    assert salt.is_file() and (os.stat(salt).st_mode & 0o777) == 0o600


def test_site_without_usable_images_accepts_nothing(tmp_path: Path) -> None:
    # Prepare: only junk images; a report and a clinical row that cannot link to anything
    (tmp_path / "dicom").mkdir()
    (tmp_path / "dicom" / "a.dcm").write_text("not an image")
    write_report(tmp_path / "reports" / "r.txt", Person())
    write_clinical(tmp_path / "clinical" / "records.csv", [Person()])
    # Execute
    result = ingest_site(tmp_path, tmp_path / "cache", progress=False)
    # Assert
    assert result.accepted == 0 and result.rejected == 3 and result.n_studies == 0
    assert _load(result.index_path)["studies"] == []
    assert result.summary["rejected_by_reason"] == {"clinical_unlinked": 1, "not_dicom": 1, "report_unlinked": 1}
