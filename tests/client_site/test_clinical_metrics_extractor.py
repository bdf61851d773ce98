"""Rule-based finding extractor: hand fixtures in both languages and the synthetic consortium."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from client_site.clinical_metrics import extract_findings, split_clauses
from client_site.findings import FINDINGS
from synthetic import generate_consortium
from synthetic.reports import parse_report_header


def _present(text: str) -> set[str]:
    return {name for name, value in extract_findings(text).items() if value}


@pytest.mark.parametrize(("text", "expected"), [
    ("No pleural effusion.", set()),
    ("The lungs are clear. No pulmonary nodule or consolidation.", set()),
    ("Lungs: Clear. Pleura: No effusion.", set()),
    ("Negative for emphysema; without ground-glass opacity.", set()),
    ("A 6 mm solid nodule in the right upper lobe. No pleural effusion.", {"nodule"}),
    ("Patchy GGO in the left lower lobe. Small left pleural effusion.",
     {"ground_glass_opacity", "pleural_effusion"}),
    ("Consolidation measuring approximately 2.5 cm. Mild centrilobular emphysema.",
     {"consolidation", "emphysema"}),
    ("Interval resolution of the previously seen consolidation.", set()),
    ("The right effusion has resolved.", set()),
    ("No change in the 8 mm nodule.", {"nodule"}),        # pseudo-negation
    ("Small pericardial effusion.", set()),               # not pleural
    ("No effusion, but a new nodule in the left upper lobe.", {"nodule"}),
])
def test_extractor_english(text: str, expected: set[str]) -> None:
    # Execute / Assert
    assert _present(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("双侧胸腔未见积液。", set()),
    ("双肺纹理清晰，未见明确实变及结节影。", set()),
    ("右肺上叶见一实性结节，大小约8mm，边界清楚。双侧胸腔未见积液。", {"nodule"}),
    ("左肺下叶见多发斑片状磨玻璃密度影。右侧少量胸腔积液。", {"ground_glass_opacity", "pleural_effusion"}),
    ("双肺见多发无壁低密度区，以上叶为著，提示轻度小叶中心型肺气肿。", {"emphysema"}),
    ("无肺气肿；没有实变。", set()),
    ("前片所示实变影已基本吸收。", set()),
    ("右肺上叶实性结节（约8mm），较前无明显变化，建议定期随访。", {"nodule"}),
    ("心包积液。", set()),
])
def test_extractor_chinese(text: str, expected: set[str]) -> None:
    # Execute / Assert
    assert _present(text) == expected


def test_extractor_returns_every_finding_and_validates() -> None:
    # Execute
    out = extract_findings("")
    # Assert
    assert list(out) == list(FINDINGS) and not any(out.values())
    with pytest.raises(TypeError):
        extract_findings(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="language"):
        extract_findings("x", language="fr")


def test_split_clauses_keeps_decimals_and_splits_cjk_punctuation() -> None:
    # Execute / Assert
    assert split_clauses("Mass 2.5 cm. No effusion; clear") == ["Mass 2.5 cm", "No effusion", "clear"]
    assert split_clauses("结节，未见积液。实变；") == ["结节", "未见积液", "实变"]


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """2 sites x 10 patients; hospital-a reports in English, hospital-b in Chinese."""
    return generate_consortium(tmp_path_factory.mktemp("cm_consortium"), n_sites=2,
                               patients_per_site=10, seed=0, matrix=64, progress=False, workers=1)


def test_extractor_reproduces_synthetic_truth(consortium: list[Path]) -> None:
    # Prepare
    languages = set()
    for site in consortium:
        with (site / "truth" / "labels.csv").open(newline="", encoding="utf-8") as handle:
            truth = {row["accession"]: row for row in csv.DictReader(handle)}
        agree = dict.fromkeys(FINDINGS, 0)
        n = 0
        # Execute
        for path in sorted((site / "reports").glob("*.txt")):
            text = path.read_text(encoding="utf-8")
            header = parse_report_header(text)
            body = text.split("\n\n", 1)[1]
            languages.add(header["Language"])
            predicted = extract_findings(body)
            row = truth[header["Accession"]]
            n += 1
            for name in FINDINGS:
                agree[name] += predicted[name] == (row[name] == "1")
        # Assert
        assert n >= 10
        for name in FINDINGS:
            assert agree[name] / n >= 0.95, (site.name, name, agree[name], n)
    assert languages == {"en", "zh"}
