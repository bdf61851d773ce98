"""evaluate_downstream: every metric key, in range, on held-out and on pooled sites."""

import math

import numpy as np
import pytest
import torch

from client_site.clinical_metrics import load_interactions
from client_site.datasets import PooledPatientDataset, StudyRecord
from client_site.downstream import DOWNSTREAM_METRICS, ClinicalMedMPT, evaluate_downstream, site_split
from client_site.downstream.draft_grammar import draft_findings
from client_site.downstream.draft_text import impression_text
from client_site.downstream.evaluate import report_metrics
from client_site.egress import EVALUATE_METRICS
from client_site.findings import FINDINGS
from client_site.layout import SiteLayout
from client_site.pseudonym import load_or_create_salt
from client_site.truth import load_study_labels
from federation.presets import get_preset

pytestmark = pytest.mark.usefixtures("single_thread")

TINY = get_preset("tiny").model


def _site(site_dir):
    layout = SiteLayout(site_dir)
    labels = load_study_labels(layout.labels_path, load_or_create_salt(layout.root))
    return layout, labels, load_interactions(layout.interactions_path)


def test_all_metrics_are_returned_in_range(ingested_site):
    # Prepare
    layout, labels, interactions = _site(ingested_site)
    train, held_out = site_split(layout.cache_dir, max_len=TINY.text_max_len)
    torch.manual_seed(0)
    model = ClinicalMedMPT(TINY)
    # Execute
    metrics = evaluate_downstream(model, train, labels, interactions, max_report_len=16)
    again = evaluate_downstream(model, train, labels, interactions, max_report_len=16)
    # Assert
    assert len(train) + len(held_out) == 8 and len(held_out) == 2
    assert tuple(metrics) == DOWNSTREAM_METRICS
    assert metrics == pytest.approx(again, nan_ok=True)  # draw 0: deterministic
    assert metrics["val_loss"] > 0 and math.isfinite(metrics["val_loss"])
    for key, value in metrics.items():
        assert key == "val_loss" or math.isnan(value) or 0.0 <= value <= 1.0, key
    assert not math.isnan(metrics["diag_auc_macro"]) and not math.isnan(metrics["med_prauc"])
    assert not math.isnan(metrics["report_rouge_l"]) and not math.isnan(metrics["med_jaccard"])
    assert model.training  # the mode is restored


def test_metric_names_are_on_the_egress_whitelist():
    assert set(DOWNSTREAM_METRICS) <= EVALUATE_METRICS
    assert "pointing_game" in EVALUATE_METRICS


def test_pooled_sites_are_one_dataset_of_all_their_patients(ingested_site):
    # Prepare: the same site twice stands in for two sites
    layout, labels, interactions = _site(ingested_site)
    train, held_out = site_split(layout.cache_dir, max_len=TINY.text_max_len)
    pooled = PooledPatientDataset([train, held_out])
    torch.manual_seed(0)
    model = ClinicalMedMPT(TINY)
    # Execute
    metrics = evaluate_downstream(model, pooled, labels, interactions, max_report_len=8)
    # Assert
    assert len(pooled) == 8
    assert pooled.study_of(7, draw=0) == held_out.study_of(1, draw=0)
    assert all(torch.equal(a, b) for a, b in zip(pooled.get(6, draw=0), held_out.get(0, draw=0)))
    assert tuple(metrics) == DOWNSTREAM_METRICS
    with pytest.raises(IndexError):
        pooled.get(8, draw=0)


def test_without_truth_labels_the_diagnosis_auc_is_undefined(ingested_site):
    # Prepare
    layout, _, interactions = _site(ingested_site)
    _, held_out = site_split(layout.cache_dir, max_len=TINY.text_max_len)
    # Execute
    metrics = evaluate_downstream(ClinicalMedMPT(TINY), held_out, None, interactions, max_report_len=8)
    # Assert
    assert math.isnan(metrics["diag_auc_macro"]) and not math.isnan(metrics["med_ddi_rate"])


def _record(report: str, language: str) -> StudyRecord:
    return StudyRecord(study_key="s", patient_key="p", volume="v.npy", report=report, language=language,
                       clinical=None)


def test_draft_finding_f1_counts_the_grammar_draft_of_the_diagnosis_head_in_the_study_language():
    # Prepare
    records = [
        _record("FINDINGS: A 12 mm nodule in the right upper lobe. Small left pleural effusion.", "en"),
        _record("检查所见：双肺多发磨玻璃影。诊断意见：磨玻璃影。", "zh"),
    ]
    generated = ["FINDINGS: The lungs are clear.", "检查所见：双肺纹理清晰。"]
    probabilities = np.zeros((2, len(FINDINGS)))
    probabilities[0, FINDINGS.index("nodule")] = 0.9  # right; the effusion is missed
    probabilities[1, FINDINGS.index("ground_glass_opacity")] = 0.7  # right
    probabilities[1, FINDINGS.index("emphysema")] = 0.6  # wrong
    probabilities[1, FINDINGS.index("consolidation")] = 0.49  # below the threshold: not stated
    model = ClinicalMedMPT(TINY).eval()
    memory = model.backbone.image_memory(torch.rand(1, 3, TINY.num_slices, TINY.image_size, TINY.image_size))
    thresholds = dict.fromkeys(FINDINGS, 0.5)
    drafted = []
    for row, record in zip(probabilities, records):
        p = dict(zip(FINDINGS, row.tolist()))
        drafted.append(draft_findings(model.backbone, memory, p, record.language, thresholds=thresholds)
                       + "\n" + impression_text(p, record.language, thresholds=thresholds))
    # Execute
    metrics = report_metrics(generated, drafted, records)
    # Assert
    assert metrics["report_finding_f1"] == 0.0  # the generated text affirms no finding
    # micro F1 of the drafts: tp 2 (nodule, ground glass), fp 1 (emphysema), fn 1 (effusion)
    assert metrics["draft_finding_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))


def test_without_reports_every_report_metric_is_undefined():
    metrics = report_metrics([], [], [])
    assert len(metrics) == 4 and all(math.isnan(v) for v in metrics.values())
