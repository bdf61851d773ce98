"""Clinician drafts: grammar findings in lexicon words, bilingual impression, warnings once each, case-viewer files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from client_site.clinical_metrics import extract_findings, interaction_warnings, load_interaction_table
from client_site.datasets import StudyRecord
from client_site.downstream.calibration import Calibration
from client_site.downstream.draft_text import NORMAL_IMPRESSION, impression_text
from client_site.downstream.drafts import (
    NO_TABLE_WARNING,
    DraftConfig,
    draft_cached_studies,
    draft_study,
)
from client_site.downstream.model import ClinicalMedMPT
from client_site.downstream.saliency import SaliencyConfig
from client_site.findings import FINDINGS
from client_site.reference.formulary import interaction_table_csv
from client_site.model import ModelConfig
from client_site.tokenizer import ReportTokenizer
from dashboard.site_reader import load_draft, load_explanation

FAST = DraftConfig(saliency=SaliencyConfig(samples=2))
PROBABILITIES = {"nodule": 0.82, "consolidation": 0.1, "ground_glass_opacity": 0.7, "emphysema": 0.2,
                 "pleural_effusion": 0.55}


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> dict[frozenset[str], tuple[str, str]]:
    """The consortium's reference/drug_interactions.csv."""
    path = tmp_path_factory.mktemp("reference") / "drug_interactions.csv"
    path.write_text(interaction_table_csv(), encoding="utf-8")
    return load_interaction_table(path)


class _Fixed(ClinicalMedMPT):
    """A tiny model with fixed diagnosis probabilities and recommendation (a real report decoder)."""

    def __init__(self, cfg: ModelConfig, probabilities: dict[str, float], drugs: list[str]) -> None:
        super().__init__(cfg)
        self.fixed = nn.Parameter(torch.logit(torch.tensor([probabilities[f] for f in FINDINGS])))
        self.fixed_drugs = drugs

    def diagnosis_logits(self, volume: torch.Tensor) -> torch.Tensor:
        # a tiny volume-dependent term, so that the saliency map is not constant
        return self.fixed[None] + 1e-6 * volume[:, 0].pow(2).flatten(1).sum(dim=1, keepdim=True)

    def recommend(self, volume: torch.Tensor, clinical_features: torch.Tensor, *,
                  threshold: float | None = None, max_drugs: int | None = None,
                  current: list[list[str]] | None = None) -> list[list[str]]:
        return [list(self.fixed_drugs)[:max_drugs]]


def _record(language: str | None, current: list[str] | None) -> StudyRecord:
    clinical = None if current is None else {"age": 70, "sex": "F", "symptoms": ["cough"], "labs": {},
                                             "current_medications": current, "medications": []}
    return StudyRecord(study_key="s1", patient_key="p1", volume="volumes/s1.npy", report=None,
                       language=language, clinical=clinical)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_impression_lists_the_findings_over_threshold_in_the_study_language(language: str) -> None:
    # Execute
    text = impression_text(PROBABILITIES, language, thresholds=dict.fromkeys(FINDINGS, 0.5))
    # Assert: most probable first, read back by the consortium's extractor as exactly these findings
    lines = text.splitlines()
    assert len(lines) == 3 and lines[0].startswith("1. ") and "0.82" in lines[0] and "0.55" in lines[2]
    assert extract_findings(text, language) == {f: PROBABILITIES[f] >= 0.5 for f in FINDINGS}
    assert ("结节（概率 0.82）" in text) if language == "zh" else ("Nodule (probability 0.82)" in text)
    assert impression_text({f: 0.1 for f in FINDINGS}, language, thresholds=dict.fromkeys(FINDINGS, 0.5)) == \
        NORMAL_IMPRESSION[language]
    assert not any(extract_findings(NORMAL_IMPRESSION[language], language).values())


def test_warnings_name_known_interactions_with_current_and_recommended_drugs(table) -> None:
    # Execute: clarithromycin + warfarin (major, from the table); levofloxacin + theophylline (moderate)
    warnings = interaction_warnings(["Clarithromycin", "salbutamol"], ["warfarin", "Clarithromycin", "metformin"],
                                    table)
    within = interaction_warnings(["salbutamol", "theophylline", "oseltamivir"], [], table)
    # Assert
    assert warnings == ["clarithromycin + warfarin (major; recommended with current medication): "
                        "CYP3A4 inhibition raises warfarin exposure; INR rise and bleeding risk"]
    assert within == ["salbutamol + theophylline (moderate; both recommended): "
                      "Additive hypokalaemia and tachyarrhythmia"]
    assert interaction_warnings(["oseltamivir"], ["warfarin"], table) == []


def test_each_interacting_pair_is_warned_once(table) -> None:
    # Execute: the same pair recommended, taken with a dose, and listed twice
    warnings = interaction_warnings(["clarithromycin", "warfarin", "Clarithromycin"],
                                    ["warfarin 5 mg", "clarithromycin"], table)
    # Assert
    assert len(warnings) == 1 and warnings[0].startswith("clarithromycin + warfarin (major; both recommended)")


@pytest.mark.parametrize("language", ["en", "zh"])
def test_draft_study_combines_model_outputs_in_lexicon_words(table, tiny_cfg, language: str) -> None:
    # Prepare: a study of a patient on warfarin, for whom the model recommends clarithromycin
    torch.manual_seed(0)
    model = _Fixed(tiny_cfg, PROBABILITIES, ["clarithromycin", "levofloxacin"])
    volume = np.random.default_rng(0).random((3, tiny_cfg.num_slices, tiny_cfg.image_size,
                                              tiny_cfg.image_size)).astype(np.float16)
    calibration = Calibration.default()
    # Execute
    draft, explanation = draft_study(model, volume, _record(language, ["warfarin"]), table,
                                     calibration=calibration, config=FAST)
    no_record, _ = draft_study(model, volume, _record(None, None), None, calibration=calibration, config=FAST)
    # Assert: the findings state exactly the findings over threshold, in lexicon words only
    assert draft.language == language and ReportTokenizer().unknown_words(draft.findings) == []
    assert extract_findings(draft.findings, language) == {f: PROBABILITIES[f] >= 0.5 for f in FINDINGS}
    assert draft.impression.startswith("1. 结节（概率 0.82）" if language == "zh" else "1. Nodule (probability 0.82)")
    assert draft.medications == ["clarithromycin", "levofloxacin"]
    assert draft.warnings[0].startswith("clarithromycin + levofloxacin (major; both recommended)")
    assert any(w.startswith("clarithromycin + warfarin (major") for w in draft.warnings)
    assert any(w.startswith("levofloxacin + warfarin (major") for w in draft.warnings)
    assert len(set(draft.warnings)) == len(draft.warnings) == 3
    assert draft.explained_finding == "nodule" and explanation.shape == volume.shape[1:]
    assert explanation.dtype == np.float16 and explanation.min() >= 0.0 and float(explanation.max()) == 1.0
    # no clinical record: no recommendation; no table: the draft says interactions were not checked
    assert no_record.medications == [] and no_record.warnings == [NO_TABLE_WARNING]
    assert no_record.language == "en"


def test_drafted_cache_is_what_the_case_viewer_reads(tmp_path: Path, tiny_cfg, single_thread) -> None:
    # Prepare: an English and a Chinese study, one with a clinical record, and the site's drug table
    site = tmp_path / "site"
    (site / "cache" / "volumes").mkdir(parents=True)
    (site / "reference").mkdir()
    (site / "reference" / "drug_interactions.csv").write_text(interaction_table_csv(), encoding="utf-8")
    rng = np.random.default_rng(1)
    studies = []
    for key, language, clinical in (("s-en", "en", {"age": 60, "medications": ["warfarin"]}), ("s-zh", "zh", None)):
        shape = (3, tiny_cfg.num_slices, tiny_cfg.image_size, tiny_cfg.image_size)
        np.save(site / "cache" / "volumes" / f"{key}.npy", rng.random(shape).astype(np.float16))
        studies.append({"study_key": key, "patient_key": f"p-{key}", "volume": f"volumes/{key}.npy",
                        "report": None, "language": language, "clinical": clinical})
    (site / "cache" / "index.json").write_text(json.dumps({"preprocess": {}, "studies": studies}), encoding="utf-8")
    torch.manual_seed(0)
    model = ClinicalMedMPT(tiny_cfg)
    # Execute
    drafts, calibration = draft_cached_studies(
        model, site, config=DraftConfig(threshold=0.3, saliency=SaliencyConfig(samples=2)),
        model_info={"run_id": "r1", "round": 3}, progress=False)
    # Assert
    assert list(drafts) == ["s-en", "s-zh"]
    for key, draft in drafts.items():
        shown = load_draft(site, key)
        assert shown is not None
        assert (shown.findings, shown.impression, shown.medications, shown.warnings) == (
            draft.findings, draft.impression, draft.medications, draft.warnings)
        heat = load_explanation(site, key, (tiny_cfg.num_slices, tiny_cfg.image_size, tiny_cfg.image_size))
        assert heat is not None and 0.0 <= float(heat.min()) and float(heat.max()) <= 1.0
        stored = json.loads((site / "cache" / "drafts" / f"{key}.json").read_text(encoding="utf-8"))
        assert stored["model"] == {"run_id": "r1", "round": 3}
        assert stored["thresholds"] == calibration.to_json()
        assert ReportTokenizer().unknown_words(draft.findings) == []
        assert set(stored["probabilities"]) == set(FINDINGS)
    chinese = drafts["s-zh"].impression
    assert any("\u4e00" <= ch <= "\u9fff" for ch in chinese) and drafts["s-zh"].medications == []
    with pytest.raises(KeyError, match="not in"):
        draft_cached_studies(model, site, ["nope"], config=FAST, progress=False)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_every_grammar_sentence_is_lexicon_only_and_read_back_as_its_finding(language: str) -> None:
    # Prepare
    from client_site.downstream.draft_grammar import finding_sentences, negative_sentences

    tok = ReportTokenizer()
    for finding in FINDINGS:
        # Execute
        sentences = finding_sentences(finding, language)
        # Assert
        for sentence in sentences:
            assert tok.unknown_words(sentence) == [], sentence
            assert extract_findings(sentence, language) == {f: f == finding for f in FINDINGS}, sentence
    negatives = " ".join(negative_sentences([], language))
    assert tok.unknown_words(negatives) == [] and not any(extract_findings(negatives, language).values())
    assert "An 8 mm" in " ".join(finding_sentences("nodule", "en"))
