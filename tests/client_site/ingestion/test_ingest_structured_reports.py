"""DICOM Structured Reports retrieved from the PACS become a study's report text, linked by accession."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ingestion_builders import Person, write_report, write_series, write_structured_report

from client_site.ingestion import ingest_site, PreprocessConfig
from client_site.ingestion.structured_reports import read_structured_report

TINY = PreprocessConfig(spacing_mm=(2.5, 2.0, 2.0), shape=(4, 16, 16))


def _ingest(site: Path) -> tuple[dict, dict]:
    result = ingest_site(site, site / "cache", config=TINY, progress=False)
    index = json.loads(result.index_path.read_text(encoding="utf-8"))
    report = json.loads(result.report_path.read_text(encoding="utf-8"))
    return index, {entry["path"]: entry for entry in report["files"]}


def test_structured_report_is_the_report_when_no_report_file(tmp_path: Path) -> None:
    # Prepare: a study, its SR (text naming the patient, a PNAME observer), an SR of an unknown accession
    jane = Person()
    write_series(tmp_path / "dicom" / "ct", jane, rng=np.random.default_rng(0))
    write_structured_report(tmp_path / "dicom" / "sr" / "report.dcm", jane,
                            "Jane Doe: 12 mm nodule in the right upper lobe. Dr. Wang concurs.",
                            observer="WANG^LI")
    write_structured_report(tmp_path / "dicom" / "sr" / "other.dcm", Person(accession="ACC11111"), "No findings.")
    # Execute
    index, files = _ingest(tmp_path)
    # Assert: linked, scrubbed, the unknown one rejected with its reason
    (study,) = index["studies"]
    assert study["report"] == "FINDINGS: [NAME]: 12 mm nodule in the right upper lobe. Dr. [NAME] concurs."
    assert study["language"] == "en"
    assert files["dicom/sr/report.dcm"]["status"] == "accepted"
    assert files["dicom/sr/other.dcm"]["status"] == "rejected"
    assert "no DICOM study with this Accession" in files["dicom/sr/other.dcm"]["reason"]
    # A re-run reuses the scrubbed body (unchanged files) and gives the same index.
    assert _ingest(tmp_path)[0] == index


def test_report_file_wins_over_structured_report(tmp_path: Path) -> None:
    jane = Person()
    write_series(tmp_path / "dicom" / "ct", jane, rng=np.random.default_rng(0))
    write_structured_report(tmp_path / "dicom" / "sr.dcm", jane, "Structured text.")
    write_report(tmp_path / "reports" / "r.txt", jane)
    index, files = _ingest(tmp_path)
    assert "12 mm solid nodule" in index["studies"][0]["report"]
    assert files["dicom/sr.dcm"]["status"] == "rejected" and "report file" in files["dicom/sr.dcm"]["reason"]


def test_structured_report_text_keeps_codes_and_numbers_not_names(tmp_path: Path) -> None:
    path = write_structured_report(tmp_path / "sr.dcm", Person(), "Nodule.", observer="WANG^LI")
    report = read_structured_report(path, "sr.dcm")
    assert report.body == "FINDINGS: Nodule." and report.accession == Person().accession
    assert "WANG^LI" in report.header.values() and "WANG" not in report.body
