"""The medication task: prescribe for this visit, with the current medications as an input."""

import json
import math

import numpy as np
import torch

from client_site.clinical_metrics import ddi_rate
from client_site.datasets import StudyRecord
from client_site.downstream import ClinicalMedMPT, DownstreamDataset, DrugGraph, select_drugs
from client_site.downstream.calibration import Calibration, best_medication_threshold
from client_site.downstream.clinical_features import NUMERIC_FEATURES, TEXT_BUCKETS, clinical_features
from client_site.downstream.evaluate import medication_metrics
from client_site.downstream.medication_task import current_medications, prescribed_now, regimen
from client_site.findings import FINDINGS
from client_site.reference.formulary import FORMULARY
from client_site.tokenizer import ReportTokenizer

VISIT = {"age": 80, "sex": "M", "symptoms": ["fever"], "labs": {},
         "current_medications": ["Warfarin 5 mg", "digoxin"], "medications": ["warfarin", "azithromycin"]}


def test_the_target_is_what_the_visit_prescribes_not_what_the_patient_already_takes():
    # Execute / Assert: warfarin is taken already (named with a dose); only azithromycin is new
    assert current_medications(VISIT, FORMULARY) == ["warfarin", "digoxin"]
    assert prescribed_now(VISIT, FORMULARY) == ["azithromycin"]
    assert regimen(["azithromycin"], VISIT, FORMULARY) == ["warfarin", "digoxin", "azithromycin"]
    assert prescribed_now(None) == [] and current_medications({"medications": ["a"]}) == []


def test_current_medications_are_an_input_of_the_medication_head_and_the_prescriptions_are_not():
    # Execute
    x = clinical_features(VISIT)
    without_current = clinical_features({**VISIT, "current_medications": []})
    other_prescription = clinical_features({**VISIT, "medications": ["levofloxacin"]})
    # Assert: one entry per formulary drug taken, after the symptom buckets
    block = x[len(NUMERIC_FEATURES) + TEXT_BUCKETS:]
    assert block.shape == (len(FORMULARY),)
    assert {FORMULARY[i] for i in torch.nonzero(block).flatten().tolist()} == {"warfarin", "digoxin"}
    assert not torch.equal(x, without_current)
    assert torch.equal(x, other_prescription)


def test_selection_never_repeats_a_current_drug_nor_adds_a_major_interaction_with_one(three_drugs):
    # Prepare: a-b is a major pair, b-c moderate; every drug is probable
    major = three_drugs.adjacency(major_only=True)
    p = torch.tensor([[0.9, 0.8, 0.7], [0.9, 0.8, 0.7], [0.9, 0.8, 0.7]])
    # Execute
    picked = select_drugs(p, major, three_drugs.drugs, threshold=0.5, current=[[], ["b"], ["a"]])
    # Assert: taking b rules out b itself and a (major with b); taking a rules out a and b
    assert picked == [["a", "c"], ["c"], ["c"]]


def test_medication_head_reads_the_predicted_findings_and_does_not_train_the_diagnosis_head(
        tiny_cfg, downstream_batch):
    # Prepare
    torch.manual_seed(0)
    model = ClinicalMedMPT(tiny_cfg)
    batch = downstream_batch(tiny_cfg, len(FORMULARY))
    heads = model.clinical_heads
    with torch.no_grad():
        heads.medication.linear.weight.normal_()
    before = model.medication_logits(batch["volume"], batch["clinical"]).detach()
    # Execute: another diagnosis head changes the findings the medication head reads
    with torch.no_grad():
        heads.diagnosis.linear.weight.normal_()
    after = model.medication_logits(batch["volume"], batch["clinical"])
    after.sum().backward()
    # Assert: its input is [findings, clinical features], and no medication gradient reaches diagnosis
    assert heads.medication.linear.in_features == len(FINDINGS) + batch["clinical"].shape[1]
    assert not torch.allclose(before, after.detach())
    assert heads.diagnosis.linear.weight.grad is None
    assert heads.medication.linear.weight.grad is not None


def test_medication_metrics_score_the_new_prescriptions_and_the_ddi_rate_of_the_whole_regimen(tiny_cfg):
    # Prepare: drug probabilities of the warfarin patient
    model = ClinicalMedMPT(tiny_cfg, graph=DrugGraph.consortium())
    probabilities = torch.zeros(1, len(FORMULARY))
    probabilities[0, FORMULARY.index("azithromycin")] = 0.9
    probabilities[0, FORMULARY.index("warfarin")] = 0.95  # already taken: never recommended again
    probabilities[0, FORMULARY.index("levofloxacin")] = 0.9  # major with warfarin: never recommended
    record = StudyRecord(study_key="s", patient_key="p", volume="v.npy", report=None, language=None,
                         clinical=VISIT)
    # Execute
    metrics = medication_metrics(model, probabilities, [record], model.graph.interactions,
                                 Calibration(dict.fromkeys(FINDINGS, 0.5), 0.5, 5, 1))
    # Assert: F1 1 against {azithromycin}; the regimen warfarin + digoxin + azithromycin has one
    # interacting pair (azithromycin-warfarin, moderate) among its three
    assert metrics["med_f1"] == 1.0 and metrics["med_jaccard"] == 1.0
    assert math.isclose(metrics["med_ddi_rate"], ddi_rate([["warfarin", "digoxin", "azithromycin"]],
                                                          model.graph.interactions))
    assert math.isclose(metrics["med_ddi_rate"], 1 / 3)
    assert np.isfinite(metrics["med_prauc"])


def test_fine_tuning_items_target_the_new_prescriptions_and_read_the_current_ones(tmp_path, tiny_cfg):
    # Prepare: a one-study cache whose record repeats a current drug among the prescriptions
    cache = tmp_path / "cache"
    (cache / "volumes").mkdir(parents=True)
    shape = (3, tiny_cfg.num_slices, tiny_cfg.image_size, tiny_cfg.image_size)
    np.save(cache / "volumes" / "s1.npy", np.zeros(shape, dtype=np.float16))
    study = {"study_key": "s1", "patient_key": "p1", "volume": "volumes/s1.npy", "report": None,
             "language": None, "clinical": VISIT}
    (cache / "index.json").write_text(json.dumps({"preprocess": {}, "studies": [study]}), encoding="utf-8")
    dataset = DownstreamDataset(cache, ["p1"], ReportTokenizer(), max_len=tiny_cfg.text_max_len, seed=0)
    # Execute
    _, _, _, features, has_clinical, _, target = dataset.get(0, draw=0)
    # Assert
    assert has_clinical == 1.0
    assert [FORMULARY[i] for i in torch.nonzero(target).flatten().tolist()] == ["azithromycin"]
    assert torch.equal(features, clinical_features(VISIT))


def test_thresholds_are_chosen_for_the_selection_that_skips_current_drugs(tiny_cfg):
    # Prepare: the drug already taken is the most probable; the new prescription comes next
    model = ClinicalMedMPT(tiny_cfg)
    probabilities = torch.full((1, len(FORMULARY)), 0.1)
    probabilities[0, FORMULARY.index("warfarin")] = 0.9
    probabilities[0, FORMULARY.index("azithromycin")] = 0.6
    # Execute
    threshold, max_drugs = best_medication_threshold(model, probabilities, [["azithromycin"]], [["warfarin"]])
    # Assert: a one-drug list suffices when warfarin cannot be recommended again
    assert (threshold, max_drugs) == (0.6, 1)
