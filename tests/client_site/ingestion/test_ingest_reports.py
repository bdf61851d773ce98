"""Report parsing and scrubbing; clinical rows keep only non-identifying fields, ages capped at 90."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingestion_builders import Person, write_clinical, write_report

from client_site.ingestion import FileRejected, RejectCode
from client_site.ingestion.ages import safe_harbor_age
from client_site.ingestion.clinical import read_clinical
from client_site.ingestion.reports import parse_report, scrub_report, scrub_text


def test_report_header_phi_is_scrubbed_from_body(tmp_path: Path) -> None:
    person = Person()
    write_report(tmp_path / "r.txt", person)
    report = parse_report(tmp_path / "r.txt", "reports/r.txt")
    body = scrub_report(report)
    assert report.accession == person.accession and report.language == "en"
    for phi in ("Jane", "Doe", "MRN0012345", "1956-03-12", "20240115", "Smith", "DOE^JANE"):
        assert phi.lower() not in body.lower()
    assert "12 mm solid nodule in the right upper lobe" in body
    assert "[NAME]" in body and "[ID]" in body and "[DATE]" in body


def test_name_forms_and_chinese_text() -> None:
    text = "患者王丽，2024年1月15日检查。Doe, Jane and JANE DOE and Dr. Li Wang; MRN 0012345."
    out = scrub_text(text, names=["DOE^JANE", "WANG^LI=王^丽"], identifiers=["MRN0012345"], dates=["20240115"])
    assert "王丽" not in out and "2024年1月15日" not in out
    assert "Jane" not in out and "Doe" not in out and "Wang" not in out and "0012345" not in out
    assert out.startswith("患者[NAME]")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Accession: A1\nPatient: X\nFINDINGS: no blank line\n", "no blank line"),
        ("Patient: X\n\nFINDINGS: ok\n", "no 'Accession:'"),
        ("Accession: A1\n\n   \n", "body is empty"),
        ("Accession A1\n\nFINDINGS: ok\n", "not 'Key: value'"),
    ],
)
def test_malformed_reports_rejected(tmp_path: Path, text: str, fragment: str) -> None:
    (tmp_path / "r.txt").write_text(text, encoding="utf-8")
    with pytest.raises(FileRejected, match=fragment) as caught:
        parse_report(tmp_path / "r.txt", "reports/r.txt")
    assert caught.value.code == RejectCode.REPORT_MALFORMED


def test_non_utf8_report_rejected(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_bytes("Accession: A1\n\n检查所见".encode("gb18030"))
    with pytest.raises(FileRejected, match="not UTF-8"):
        parse_report(tmp_path / "r.txt", "reports/r.txt")


def test_clinical_keeps_only_allowed_fields(tmp_path: Path) -> None:
    write_clinical(tmp_path / "records.csv", [Person()])
    table = read_clinical(tmp_path / "records.csv")
    row = table.rows["ACC98765"]
    assert set(row) == {"age", "sex", "symptoms", "labs", "current_medications", "medications"}
    assert row["current_medications"] == ["warfarin 5 mg"] and row["medications"] == ["amoxicillin", "ibuprofen"]
    assert row["age"] == 67 and row["sex"] == "F" and row["symptoms"] == ["cough", "fever"]
    assert row["labs"] == {"wbc": 11.2, "crp": 35.0, "procalcitonin": 0.4, "spo2": 94.0, "eosinophils": 0.1}
    assert "MRN0012345" not in repr(row) and "DOE" not in repr(row) and "19560312" not in repr(row)


@pytest.mark.parametrize(
    ("value", "years"),
    [("67", 67), ("89", 89), ("89.5", 90), ("90", 90), ("104", 90), ("093Y", 90), ("067Y", 67), ("67 years", 67),
     ("006M", 0.5), ("026W", 0.5), ("730D", 2), (95.0, 90), (42, 42), ("", None), ("  ", None), ("-3", None),
     ("ninety", None), (">89", None), ("DOE 67", None), (None, None), (float("nan"), None)],
)
def test_ages_over_89_become_90(value: str | float | None, years: int | float | None) -> None:
    # HIPAA Safe Harbor: ages over 89 fall into one "90 or older" category; free text is never kept.
    assert safe_harbor_age(value) == years


def test_clinical_row_of_a_very_old_patient_says_90(tmp_path: Path) -> None:
    write_clinical(tmp_path / "records.csv", [Person(age="97"), Person(accession="ACC2", age="067Y")])
    rows = read_clinical(tmp_path / "records.csv").rows
    assert (rows["ACC98765"]["age"], rows["ACC2"]["age"]) == (90, 67)
