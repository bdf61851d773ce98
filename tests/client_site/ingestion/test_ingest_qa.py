"""Data QA (``--qa``): small-count suppression, finding prevalence from whole report bodies, qa.json and its
flat metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ingestion_builders import NATIVE, Person, write_report, write_series

from client_site.clinical_metrics import extract_findings
from client_site.egress import QA_METRICS, release_metrics
from client_site.findings import FINDINGS
from client_site.ingestion import RejectCode, ingest_site, load_qa_metrics, qa_metrics
from client_site.ingestion.qa import compute_qa, fraction, suppress, suppress_table


def test_small_counts_are_suppressed() -> None:
    assert [suppress(n) for n in (0, 1, 4, 5, 37)] == [0, "<5", "<5", 5, 37]
    # One hidden cell would follow from the total, so the next smallest is hidden as well.
    assert suppress_table({"a": 3, "b": 9, "c": 40, "d": 0}) == {"a": "<5", "b": "suppressed", "c": 40, "d": 0}
    assert suppress_table({"a": 3, "b": 2, "c": 40}) == {"a": "<5", "b": "<5", "c": 40}
    assert fraction(10, 40) == 0.25 and fraction(3, 40) is None and fraction(38, 40) is None
    assert fraction(2, 4) is None and fraction(0, 40) == 0.0 and fraction(40, 40) == 1.0


@pytest.mark.parametrize(
    ("language", "body", "present"),
    [
        ("en", "FINDINGS: A 6 mm solid nodule in the right upper lobe. No pleural effusion or pneumothorax.\n"
               "IMPRESSION: Nodule. No consolidation.", {"nodule"}),
        ("en", "FINDINGS: The lungs are clear. No pulmonary nodule or consolidation. Interval resolution of the "
               "previously seen ground-glass opacities.\nIMPRESSION: Pleural effusion resolved.", set()),
        ("en", "FINDINGS: Moderate centrilobular emphysema. Small left pleural effusion without pneumothorax.",
         {"emphysema", "pleural_effusion"}),
        ("en", "FINDINGS: Patchy ground-glass opacities and consolidation in the left lower lobe.",
         {"ground_glass_opacity", "consolidation"}),
        ("zh", "检查所见：右肺上叶见一实性结节，大小约8mm。双侧胸腔未见积液。\n诊断意见：右肺上叶结节。", {"nodule"}),
        ("zh", "检查所见：双肺纹理清晰，未见明确实变及结节影。双侧胸腔未见积液。\n诊断意见：前片所示磨玻璃影已基本吸收。", set()),
        ("zh", "检查所见：左肺下叶见磨玻璃密度影，小叶间隔增厚。双侧少量胸腔积液。双肺见多发无壁低密度区，提示轻度小叶中心型肺气肿。",
         {"ground_glass_opacity", "pleural_effusion", "emphysema"}),
    ],
)
def test_qa_reads_whole_report_bodies(language: str, body: str, present: set[str]) -> None:
    # QA counts prevalence with the consortium's extractor over the whole body, headings included:
    # a finding negated or resolved in the impression is not counted.
    found = extract_findings(body, language)
    assert set(found) == set(FINDINGS)
    assert {name for name, yes in found.items() if yes} == present


def test_qa_json_and_flat_metrics(tmp_path: Path) -> None:
    # Prepare: 6 studies with reports naming a nodule, 1 without report, 1 orphan report, 1 junk file
    rng = np.random.default_rng(2)
    people = [Person(name=f"DOE^P{k}", patient_id=f"MRN{k:07d}", accession=f"ACC{k:05d}") for k in range(7)]
    for k, person in enumerate(people):
        write_series(tmp_path / "dicom" / person.accession, person, rng=rng)
        if k < 6:
            write_report(tmp_path / "reports" / f"r{k}.txt", person)
    write_report(tmp_path / "reports" / "orphan.txt", Person(accession="ACC99999"))
    (tmp_path / "dicom" / "junk.bin").write_bytes(b"\x00" * 300)
    # Execute
    result = ingest_site(tmp_path, tmp_path / "cache", config=NATIVE, progress=False, qa=True)
    qa = json.loads((tmp_path / "cache" / "qa.json").read_text(encoding="utf-8"))
    metrics = load_qa_metrics(tmp_path / "cache")
    # Assert
    assert result.qa_path == tmp_path / "cache" / "qa.json"
    assert qa["studies"] == 7 and qa["patients"] == 7
    assert qa["files"]["rejected_by_reason"] == {"not_dicom": "<5", "report_unlinked": "<5"}
    assert qa["series_per_study"] == {"1": 7, "2": 0, "3": 0, "4+": 0}
    assert qa["slice_spacing_mm"]["2to3"] == 7 and qa["slice_thickness_mm"]["2to3"] == 7
    assert qa["pixel_spacing_mm"]["0p7to0p8"] == 7
    assert qa["reports"]["coverage"] is None  # 6 of 7: the one study without a report would be singled out
    assert qa["reports"]["studies_without_report"] == "<5"
    assert qa["finding_prevalence"]["nodule"] == {"count": 6, "fraction": 1.0}
    assert qa["finding_prevalence"]["emphysema"] == {"count": 0, "fraction": 0.0}
    assert qa["hu"]["p01_across_studies"]["p50"] == -1000.0 and qa["hu"]["studies_without_air"] == 0
    assert all(isinstance(v, float) for v in metrics.values()) and metrics == qa_metrics(qa)
    assert metrics["qa_studies"] == 7.0 and metrics["qa_prevalence_nodule"] == 1.0
    assert metrics["qa_slice_spacing_2to3"] == 7.0 and metrics["qa_series_per_study_4plus"] == 0.0
    assert "qa_rejected_not_dicom" not in metrics and "qa_report_coverage" not in metrics  # suppressed
    assert metrics["qa_hu_p99_p50"] == 40.0  # soft tissue (HU sampled on every 8th row and column)


def test_qa_metrics_need_qa_json(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="fedmpt ingest SITE_DIR --qa"):
        load_qa_metrics(tmp_path)


def _every_statistic_shown() -> dict[str, Any]:
    """qa.json of 20 studies, 5 per plane, where no count is 1-4: every statistic is shown."""
    planes = ("axial", "coronal", "sagittal", "oblique")
    volumes = {f"s{k:02d}": {"spacing_mm": [2.5, 0.7, 0.7], "thickness_mm": 2.5, "plane": planes[k % 4],
                             "tilt_deg": 0.0, "hu_percentiles": {"p01": -1000.0, "p99": 400.0}} for k in range(20)}
    summary = {"files_seen": 500, "files_accepted": 380, "files_rejected": 120,
               "rejected_by_reason": {code.value: 5 for code in RejectCode},
               "series": {"seen": 30, "accepted": 20, "rejected": 5, "not_selected": 5},
               "patients": 20, "studies_with_report": 10, "reports": {"rejected": 5}}
    series = [{"study_key": key} for key in volumes]
    reports = {key: ("FINDINGS: A 5 mm nodule.", "en") for key in list(volumes)[:10]}
    return compute_qa(summary, series, volumes, reports)


def test_egress_whitelist_is_exactly_the_qa_names() -> None:
    # Execute
    metrics = qa_metrics(_every_statistic_shown())
    # Assert: every name QA can produce may leave, and nothing else under qa_
    assert set(metrics) == QA_METRICS
    assert release_metrics("evaluate", metrics) == metrics
    assert metrics["qa_report_coverage"] == 0.5 and metrics["qa_planes_oblique"] == 5.0
    with pytest.raises(ValueError, match="not on the site's evaluate egress whitelist"):
        release_metrics("evaluate", {"qa_rejected_DOE_JANE": 1.0})
