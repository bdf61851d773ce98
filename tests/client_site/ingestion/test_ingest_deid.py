"""PHI canaries: distinctive values seeded into DICOM headers (standard and private tags), reports and
the export's folder and file names must not reach any cache file (contents or names), the QA metrics or
the logs; the header summaries are de-identified; ages over 89 are kept as 90."""

from __future__ import annotations

import json
import logging
import re
import stat
from datetime import date
from pathlib import Path

import numpy as np
import pydicom
import pytest
from ingestion_builders import NATIVE, Person, write_clinical, write_series

from client_site.ingestion import IngestResult, ingest_site, qa_metrics
from client_site.ingestion.deid import DEID_CODES

NAME, PID, BIRTH = "QZXCANARY^ZEBULON", "CNRYPID7731", "19010203"
TAGS = {
    "InstitutionName": "CANARY INSTITUTE OF QZX", "InstitutionAddress": "1 Canary Wharf QZX",
    "OperatorsName": "QZXOPERATOR^XAVIER", "PerformingPhysicianName": "QZXPERFDOC^IVY", "StationName": "QZXSTATION",
    "StudyID": "CNRYSTUDY5", "OtherPatientIDs": "CNRYOTHERID", "PatientAddress": "42 QZXLANE",
    "StudyDescription": "CT chest QZXCANARY follow-up", "SeriesDescription": "QZXSERIES thin",
    "DeviceSerialNumber": "QZXSERIAL77", "PatientTelephoneNumbers": "555-QZX-0199", "PatientAge": "123Y",
}
# PACS exports often name folders after the patient; the per-file report must name them, the cache never.
EXPORT_FOLDER = "QZXCANARY_ZEBULON_CNRYPID7731"
HEX_RUNS = re.compile(r"[0-9a-f]{16,}")  # SHA digests and pseudonymous keys in the cache
PRIVATE = ("QZXVENDOR", "QZXPRIVATE42")
PEOPLE = [
    Person(name=NAME, patient_id=PID, birth_date=BIRTH, accession="CNRYACC9911", study_date="20240115",
           referring="QZXREFDOC^QUINN", radiologist="QZXRAD^OLIVE", age="123"),
    Person(name=NAME, patient_id=PID, birth_date=BIRTH, accession="CNRYACC9912", study_date="20240301",
           referring="QZXREFDOC^QUINN", radiologist="QZXRAD^OLIVE", age="123"),
]
CANARIES = [
    "QZXCANARY", "ZEBULON", PID, "7731", BIRTH, "1901-02-03", "CNRYACC991", "20240115", "2024-01-15", "20240301",
    "QZXREFDOC", "QUINN", "QZXRAD", "OLIVE", "CANARY INSTITUTE", "CANARY WHARF", "QZXOPERATOR", "XAVIER",
    "QZXPERFDOC", "QZXSTATION", "CNRYSTUDY5", "CNRYOTHERID", "QZXLANE", "QZXSERIES", "QZXSERIAL77", "555-QZX",
    *PRIVATE,
]


def _report(path: Path, person: Person) -> None:
    header = (f"Accession: {person.accession}\nPatient: {person.name}\nPatient ID: {person.patient_id}\n"
              f"Birth date: {person.birth_date}\nExam date: {person.study_date}\n"
              f"Referring physician: {person.referring}\nRadiologist: {person.radiologist}\nLanguage: en\n")
    body = ("FINDINGS: Zebulon Qzxcanary (CNRYPID7731, born 1901-02-03) was scanned on 2024-01-15 by technologist "
            "Xavier Qzxoperator at the request of Dr. Quinn Qzxrefdoc. A 9 mm solid nodule in the left lower lobe. "
            "No pleural effusion.\nIMPRESSION: Pulmonary nodule. Read by Dr. Olive Qzxrad; accession CNRYACC9911.\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + body, encoding="utf-8")


@pytest.fixture(scope="module")
def canary_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("canary")
    rng = np.random.default_rng(5)
    uids: list[str] = []
    for k, person in enumerate(PEOPLE):
        _, paths = write_series(root / "dicom" / EXPORT_FOLDER / f"export{k}", person, rng=rng)
        for path in paths:
            ds = pydicom.dcmread(path)
            for keyword, value in TAGS.items():
                setattr(ds, keyword, value)
            ds.Manufacturer, ds.ConvolutionKernel, ds.KVP = "ACME", "B30f", 120
            block = ds.private_block(0x0009, PRIVATE[0], create=True)
            block.add_new(0x01, "LO", PRIVATE[1])
            ds.save_as(path, enforce_file_format=True)
            uids += [str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID), str(ds.StudyInstanceUID)]
        _report(root / "reports" / f"{PID}_report{k}.txt", person)
    (root / "dicom" / EXPORT_FOLDER / "QZXCANARY notes.txt").write_text("not an image", encoding="utf-8")
    write_clinical(root / "clinical" / "records.csv", PEOPLE)
    return root, sorted(set(uids))


def _ingest_logged(root: Path, caplog: pytest.LogCaptureFixture) -> IngestResult:
    caplog.set_level(logging.DEBUG)
    return ingest_site(root, root / "cache", config=NATIVE, progress=True, qa=True)


def test_no_canary_reaches_cache_metrics_or_logs(
    canary_site: tuple[Path, list[str]], caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare
    root, uids = canary_site
    # Execute: a first run, and a second one served from the incremental cache
    first = _ingest_logged(root, caplog)
    second = _ingest_logged(root, caplog)
    # Assert
    assert first.n_studies == 2 and second.n_volumes_reused == 2 and first.n_reports_linked == 2
    cache_files = [p for p in (root / "cache").rglob("*") if p.is_file()]
    assert {"state.sqlite", "qa.json", "ingest_summary.json", "index.json"} <= {p.name for p in cache_files}
    texts = {p.relative_to(root).as_posix(): p.read_bytes().decode("latin-1").lower() for p in cache_files}
    texts["cache file names"] = "\n".join(p.relative_to(root).as_posix() for p in (root / "cache").rglob("*")).lower()
    texts["logs"] = caplog.text.lower()
    texts["stdout+stderr"] = "".join(capsys.readouterr()).lower()
    texts["qa_metrics"] = json.dumps(qa_metrics(json.loads((root / "cache" / "qa.json").read_text()))).lower()
    for where, text in texts.items():
        # A short all-digit canary (the ID's number, "7731") also occurs by chance inside random
        # hex digests and salted keys, about one session in twenty: look for it outside them.
        outside_hex = HEX_RUNS.sub(" ", text)
        for canary in [*CANARIES, *uids]:
            haystack = outside_hex if canary.isdigit() and len(canary) < 8 else text
            assert canary.lower() not in haystack, f"{canary!r} found in {where}"
    index = json.loads((root / "cache" / "index.json").read_text(encoding="utf-8"))
    assert all("9 mm solid nodule" in s["report"] for s in index["studies"])  # the medical text survives
    assert [s["clinical"]["age"] for s in index["studies"]] == [90, 90]  # 123: "90 or older"
    # The per-file report does name the canary folder (IT must find the files), outside the cache, owner-only.
    report = json.loads(first.report_path.read_text(encoding="utf-8"))
    assert first.report_path == root / "ingest" / "ingest_report.json"
    rejected = [f for f in report["files"] if f["status"] == "rejected"]
    assert [f["path"] for f in rejected] == [f"dicom/{EXPORT_FOLDER}/QZXCANARY notes.txt"]
    assert all(s["report"].startswith(f"reports/{PID}_report") for s in report["studies"])
    assert stat.S_IMODE(first.report_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.report_path.parent.stat().st_mode) == 0o700


def test_header_summary_is_deidentified_with_consistent_date_shift(canary_site: tuple[Path, list[str]]) -> None:
    root, _ = canary_site
    ingest_site(root, root / "cache", config=NATIVE, progress=False)
    summaries = sorted((json.loads(p.read_text(encoding="utf-8")) for p in (root / "cache" / "headers").glob("*.json")),
                       key=lambda s: s["study_date_shifted"])
    assert len(summaries) == 2
    for summary in summaries:
        assert summary["patient_identity_removed"] == "YES"
        assert [code for code, _ in DEID_CODES] == summary["deidentification_method_codes"][-2:]
        assert "DICOGNITO" in summary["deidentification_method"]
        assert (summary["manufacturer"], summary["kernel"], summary["kvp"]) == ("ACME", "B30f", 120.0)
        assert summary["slice_thickness_mm"] == 2.5 and summary["pixel_spacing_mm"] == [0.7, 0.7]
        assert set(summary) >= {"modality", "model", "body_part", "patient_sex", "series", "transfer_syntax"}
        assert summary["patient_age_years"] == 90  # PatientAge 123Y: "90 or older"
    shifted = [date.fromisoformat(f"{s['study_date_shifted'][:4]}-{s['study_date_shifted'][4:6]}-"
                                  f"{s['study_date_shifted'][6:]}") for s in summaries]
    real = [date(2024, 1, 15), date(2024, 3, 1)]
    assert 62 <= (real[0] - shifted[0]).days <= 730
    assert (shifted[1] - shifted[0]).days == (real[1] - real[0]).days  # one patient: intervals kept
