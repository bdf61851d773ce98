"""Draft thresholds: chosen on the training patients only; the held-out patients cannot move them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from client_site.datasets import load_cache_index, split_patients
from client_site.downstream.calibration import (
    DEFAULT_THRESHOLD,
    best_f1_threshold,
    best_medication_threshold,
    site_calibration,
)
from client_site.downstream.model import ClinicalMedMPT
from client_site.layout import SiteLayout
from federation.presets import get_preset

pytestmark = pytest.mark.usefixtures("single_thread")


def test_best_f1_threshold_separates_the_scores():
    # Prepare: positives score 0.6-0.7, negatives 0.45-0.55 -> F1 1.0 from 0.6 on (highest tie: 0.6)
    scores = np.array([0.6, 0.65, 0.7, 0.45, 0.5, 0.55])
    labels = np.array([1, 1, 1, 0, 0, 0])
    # Execute / Assert
    assert best_f1_threshold(scores, labels) == pytest.approx(0.6)
    assert best_f1_threshold(scores, np.zeros(6)) == DEFAULT_THRESHOLD


def test_medication_threshold_keeps_the_short_list_of_prescribed_drugs():
    # Prepare: every drug at 0.6 (the "16-17 drugs" failure), prescribed drugs at 0.8
    model = ClinicalMedMPT(get_preset("tiny").model)
    probabilities = torch.full((2, len(model.drugs)), 0.6)
    probabilities[0, 0] = probabilities[1, 1] = 0.8
    prescribed = [[model.drugs[0]], [model.drugs[1]]]
    # Execute
    threshold, max_drugs = best_medication_threshold(model, probabilities, prescribed)
    # Assert
    assert 0.6 < threshold <= 0.8 and max_drugs == 1


def _rewrite_held_out(site_dir: Path) -> None:
    """Give every held-out patient other prescriptions, another report and another volume."""
    cache = SiteLayout(site_dir).cache_dir
    keys = sorted({r.patient_key for r in load_cache_index(cache)})
    _, held = split_patients(keys)
    index = json.loads((cache / "index.json").read_text(encoding="utf-8"))
    changed = 0
    for study in index["studies"]:
        if study["patient_key"] in held:
            study["report"] = "FINDINGS:\nLarge bilateral pleural effusions. A 30 mm solid nodule."
            if study.get("clinical"):
                study["clinical"]["medications"] = ["warfarin", "clarithromycin", "amiodarone", "digoxin"]
            volume = np.load(cache / study["volume"])
            np.save(cache / study["volume"], (1.0 - volume.astype(np.float32)).astype(volume.dtype))
            changed += 1
    assert changed
    (cache / "index.json").write_text(json.dumps(index), encoding="utf-8")


def test_held_out_patients_cannot_change_the_thresholds(ingested_site: Path, tmp_path: Path):
    # Prepare: a copy of the site whose held-out patients are rewritten
    torch.manual_seed(0)
    model = ClinicalMedMPT(get_preset("tiny").model)
    with torch.no_grad():
        model.clinical_heads.medication.linear.bias.normal_(0.0, 2.0)  # spread drug probabilities over the grid
        model.clinical_heads.diagnosis.linear.bias.normal_(0.0, 2.0)
    copy = tmp_path / "site"
    shutil.copytree(SiteLayout(ingested_site).cache_dir, copy / "cache")
    before = site_calibration(model, copy / "cache")
    # Execute
    _rewrite_held_out(copy)
    after = site_calibration(model, copy / "cache")
    # Assert
    assert before == after and before.n_patients > 0
