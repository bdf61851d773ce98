"""Reports, clinical records, the drug table and the PHI inventory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from synthetic_helpers import read_csv

from client_site.findings import FINDINGS
from synthetic import FORMULARY, INTERACTIONS, phi_values
from synthetic.clinical import background_medications, clinical_record
from client_site.reference.formulary import ANTIBIOTICS, BRONCHODILATORS, DIURETICS, has_major
from synthetic.measure import Finding
from synthetic.report_common import ReportContext
from synthetic.reports import parse_report_header, report_body
from synthetic.scenarios import SCENARIOS

KEYWORDS = {
    "en": {"nodule": "nodule", "consolidation": "consolidation", "ground_glass_opacity": "ground-glass",
           "emphysema": "emphysema", "pleural_effusion": "pleural effusion"},
    "zh": {"nodule": "结节", "consolidation": "实变", "ground_glass_opacity": "磨玻璃",
           "emphysema": "肺气肿", "pleural_effusion": "胸腔积液"},
}
HEADER = ["Accession", "Patient", "Patient ID", "Birth date", "Exam date", "Referring physician",
          "Radiologist", "Language"]


def _finding(kind: str, **kw: object) -> Finding:
    base = {"lobes": (0,), "right": True, "left": False, "size_mm": 14.0, "volume_ml": 200.0,
            "lung_fraction": 0.08}
    base.update(kw)
    return Finding(kind=kind, **base)  # type: ignore[arg-type]


def _reports(site_dir: Path) -> dict[str, tuple[dict[str, str], str]]:
    out = {}
    for path in sorted((site_dir / "reports").glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        header = parse_report_header(text)
        out[header["Accession"]] = (header, text.split("\n\n", 1)[1])
    return out


@pytest.mark.parametrize(("language", "style"), [("en", 0), ("en", 1), ("en", 2), ("zh", 0)])
@pytest.mark.parametrize("kind", FINDINGS)
def test_report_mentions_each_finding_in_its_language(language: str, style: int, kind: str) -> None:
    # Prepare
    ctx = ReportContext(language, style, 5.0, has_prior=False, cardiomegaly=False,
                        referring_display="Ann Lee")
    for findings in ([_finding(kind)], [_finding(kind), _finding("pleural_effusion", right=True, left=True)]):
        # Execute
        body = report_body(findings, [], ctx)
        # Assert
        assert KEYWORDS[language][kind] in body.lower()
        heads = ("FINDINGS:", "IMPRESSION:") if language == "en" else ("检查所见：", "诊断意见：")
        assert all(h in body for h in heads)


def test_report_wording_carries_location_size_and_change() -> None:
    nodule = _finding("nodule", size_mm=12.0, lobes=(0,), change="increased", prior_size_mm=9.0)
    en = report_body([nodule], ["consolidation"], ReportContext("en", 0, 5.0, True, False, "Ann Lee"))
    zh = report_body([nodule], [], ReportContext("zh", 0, 7.5, True, False, "Li Na"))
    assert "A 12 mm solid nodule in the right upper lobe." in en and "previously 9 mm" in en
    assert "resolution of the previously seen consolidation" in en
    assert "Dr. Ann Lee" in en  # a growing nodule is phoned through
    assert "右肺上叶见一实性结节，大小约12mm" in zh and "前片约9mm" in zh
    normal = report_body([], [], ReportContext("zh", 0, 7.5, False, False, "Li Na"))
    assert "未见明显异常" in normal


def test_generated_reports_follow_the_contract(consortium: list[Path]) -> None:
    for site_dir in consortium:
        labels = {r["accession"]: r for r in read_csv(site_dir / "truth" / "labels.csv")}
        reports = _reports(site_dir)
        assert set(reports) == set(labels)
        for accession, (header, body) in reports.items():
            assert list(header) == HEADER
            language = header["Language"]
            assert language == ("zh" if site_dir.name == "hospital-b" else "en")
            for finding in FINDINGS:
                if labels[accession][finding] == "1":
                    assert KEYWORDS[language][finding] in body.lower(), (accession, finding)
            assert header["Patient"] not in body and header["Patient ID"] not in body


def test_clinical_records_are_consistent_with_findings(consortium: list[Path]) -> None:
    for site_dir in consortium:
        labels = {r["accession"]: r for r in read_csv(site_dir / "truth" / "labels.csv")}
        for row in read_csv(site_dir / "clinical" / "records.csv"):
            found = {f for f in FINDINGS if labels[row["accession"]][f] == "1"}
            _check_record(row, found)


def _check_record(row: dict[str, str], found: set[str]) -> None:
    meds = set(filter(None, row["medications"].split(";")))
    current = set(filter(None, row["current_medications"].split(";")))
    symptoms = set(filter(None, row["symptoms"].split(";")))
    assert meds <= set(FORMULARY) and current <= set(FORMULARY)
    assert not meds & current  # the visit prescribes what the patient does not already take
    assert row["sex"] in {"M", "F"} and 18 <= int(row["age"]) <= 100
    if "consolidation" in found:
        assert "fever" in symptoms and meds & set(ANTIBIOTICS)
        assert float(row["wbc"]) > 10 and float(row["crp"]) > 40 and float(row["procalcitonin"]) > 0.25
        assert int(row["spo2"]) < 95
    if "emphysema" in found:
        assert meds & set(BRONCHODILATORS) and "dyspnea" in symptoms
    if "pleural_effusion" in found and "consolidation" not in found:
        assert meds & set(DIURETICS)
    if not found or found == {"nodule"}:  # (heart failure keeps its diuretics after the effusion)
        assert not meds & set(ANTIBIOTICS)


def test_clinical_records_agree_with_findings_for_every_scenario() -> None:
    # many draws of the record generator for every scenario and finding combination
    rng = np.random.default_rng(0)
    combos = [set(), {"nodule"}, {"consolidation"}, {"consolidation", "pleural_effusion"},
              {"ground_glass_opacity"}, {"emphysema"}, {"emphysema", "nodule"},
              {"pleural_effusion", "ground_glass_opacity"}]
    majors = 0
    for scenario in SCENARIOS:
        for kinds in combos:
            if "pleural_effusion" in kinds and "consolidation" not in kinds and scenario != "heart_failure":
                continue  # effusions without pneumonia come from heart failure only
            for follow_up in (False, True):
                background = background_medications(rng, scenario=scenario, age=75)
                rec = clinical_record(rng, scenario=scenario, kinds=kinds, follow_up=follow_up, age=75,
                                      sex="F", background=background)
                assert rec.current_medications == background
                row = {"medications": ";".join(rec.medications), "symptoms": ";".join(rec.symptoms),
                       "current_medications": ";".join(rec.current_medications),
                       "sex": rec.sex, "age": str(rec.age), "wbc": str(rec.wbc), "crp": str(rec.crp),
                       "procalcitonin": str(rec.procalcitonin), "spo2": str(rec.spo2)}
                _check_record(row, kinds)
                majors += has_major(rec.current_medications + rec.medications)
    assert majors < 0.25 * len(SCENARIOS) * len(combos) * 2


def test_drug_table_is_real_pairs_of_the_formulary(consortium: list[Path]) -> None:
    assert 20 <= len(FORMULARY) <= 30
    pairs = [frozenset((a, b)) for a, b, _, _ in INTERACTIONS]
    assert len(pairs) == len(set(pairs))
    assert all(len(p) == 2 and p <= set(FORMULARY) for p in pairs)
    assert {s for _, _, s, _ in INTERACTIONS} == {"major", "moderate"}
    rows = read_csv(consortium[0] / "reference" / "drug_interactions.csv")
    assert [tuple(r.values()) for r in rows] == [tuple(i) for i in INTERACTIONS]
    assert frozenset(("clarithromycin", "warfarin")) in pairs


def test_phi_values_are_in_the_dicom_headers(consortium: list[Path]) -> None:
    for site_dir in consortium:
        # Execute
        phi = phi_values(site_dir)
        # Assert
        ds = pydicom.dcmread(next((site_dir / "dicom").rglob("*.dcm")), stop_before_pixels=True)
        header = str(ds.PatientName) + ds.PatientID + ds.PatientBirthDate + ds.AccessionNumber
        assert str(ds.PatientName).split("=")[0] in phi
        assert {ds.PatientID, ds.PatientBirthDate, ds.AccessionNumber, str(ds.InstitutionName)} <= phi
        assert any(v in header for v in phi)
        for row in read_csv(site_dir / "clinical" / "records.csv"):
            assert {row["patient_id"], row["patient_name"], row["birth_date"]} <= phi
        if site_dir.name == "hospital-b":
            assert any("\u4e00" <= v[0] <= "\u9fff" for v in phi)  # ideographic names too
