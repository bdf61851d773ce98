"""Decision thresholds of the drafts, chosen on a site's TRAINING patients only.

A probability of 0.5 is not a decision rule for a model trained under DP noise: its medication
probabilities were above 0.5 for 16-17 of the 28 drugs of every patient. :func:`calibrate` picks,
on the training patients' draw-0 studies (the side of :func:`~client_site.datasets.split_patients`
that fine-tuning used, never the held-out side), the medication threshold that maximises the
visit-averaged F1 of the interaction-aware recommendation against the visit's prescriptions on file
(:func:`~client_site.downstream.medication_task.prescribed_now`)
(jointly with the list length, at most :data:`MAX_RECOMMENDED` drugs: a short ranked list), and
for each finding the diagnosis threshold that maximises its F1 against the weak label the study's
own report gives (:func:`~client_site.downstream.data.diagnosis_targets`). No truth file is
read, and the held-out patients cannot move a threshold (a test checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from client_site.clinical_metrics import set_metrics
from client_site.datasets import PatientDataset
from client_site.downstream.data import site_split
from client_site.downstream.drug_graph import select_drugs
from client_site.downstream.medication_task import current_medications, prescribed_now
from client_site.downstream.model import ClinicalMedMPT
from client_site.evaluation import EvalMode, fixed_batches
from client_site.findings import FINDINGS

GRID: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))
"""Candidate thresholds 0.05, 0.10, ..., 0.95; ties go to the highest (the shortest list)."""
DEFAULT_THRESHOLD = 0.5
MAX_RECOMMENDED = 5
"""Longest medication list a draft recommends; the calibration picks the length 1..5."""


@dataclass(frozen=True)
class Calibration:
    """Thresholds of one model at one site.

    Attributes
    ----------
    finding_thresholds : dict[str, float]
        Diagnosis probability from which a draft states each finding.
    medication_threshold : float
        Drug probability from which a drug is a recommendation candidate.
    max_drugs : int
        Longest recommended list (the most probable candidates).
    n_patients : int
        Training patients the thresholds were chosen on (0: the defaults, nothing to calibrate on).
    """

    finding_thresholds: dict[str, float]
    medication_threshold: float
    max_drugs: int
    n_patients: int

    @classmethod
    def default(cls, threshold: float = DEFAULT_THRESHOLD) -> Calibration:
        """``threshold`` for every finding and for the drugs (no calibration data)."""
        return cls(dict.fromkeys(FINDINGS, threshold), threshold, MAX_RECOMMENDED, 0)

    def to_json(self) -> dict[str, object]:
        """Plain dict for a draft's or an evaluation's provenance."""
        return {"finding_thresholds": self.finding_thresholds,
                "medication_threshold": self.medication_threshold, "max_drugs": self.max_drugs,
                "n_patients": self.n_patients}


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """Threshold of :data:`GRID` with the highest F1 of ``scores >= t`` against 0/1 ``labels``.

    Without a positive label there is nothing to trade off: :data:`DEFAULT_THRESHOLD`.
    """
    labels = np.asarray(labels).astype(bool)
    if not labels.any():
        return DEFAULT_THRESHOLD
    best, best_f1 = DEFAULT_THRESHOLD, -1.0
    for t in GRID:
        predicted = np.asarray(scores) >= t
        tp = float((predicted & labels).sum())
        f1 = 2 * tp / max(float(predicted.sum() + labels.sum()), 1.0)
        if f1 >= best_f1:
            best, best_f1 = t, f1
    return best


def best_medication_threshold(model: ClinicalMedMPT, probabilities: torch.Tensor,
                              prescribed: list[list[str]],
                              current: list[list[str]] | None = None) -> tuple[float, int]:
    """Threshold of :data:`GRID` and list length (1..:data:`MAX_RECOMMENDED`) with the highest
    visit-averaged F1 of :func:`select_drugs` (given each visit's ``current`` medications, default
    none); ties go to the shorter list, then the higher threshold."""
    keep = [i for i, drugs in enumerate(prescribed) if drugs]  # set_metrics skips the others anyway
    if not keep:
        return DEFAULT_THRESHOLD, MAX_RECOMMENDED
    probabilities, prescribed = probabilities[keep], [prescribed[i] for i in keep]
    current = [current[i] for i in keep] if current is not None else None
    best, best_f1 = (DEFAULT_THRESHOLD, MAX_RECOMMENDED), -1.0
    for k in range(MAX_RECOMMENDED, 0, -1):
        for t in GRID:
            recommended = select_drugs(probabilities, model.major_adjacency, model.drugs, threshold=t, max_drugs=k,
                                       current=current)
            f1 = set_metrics(prescribed, recommended)["f1"]
            if f1 >= best_f1:
                best, best_f1 = (t, k), f1
    return best


def calibrate(model: ClinicalMedMPT, train: PatientDataset, *, batch_size: int = 8) -> Calibration:
    """Thresholds of ``model`` chosen on the training patients ``train`` (draw-0 studies).

    Parameters
    ----------
    model : ClinicalMedMPT
        The fine-tuned model (its training flag is restored).
    train : DownstreamDataset
        The site's TRAINING patients (items :data:`~client_site.downstream.data.DownstreamItem`).
    batch_size : int
        Patients per forward pass. (default: 8)
    """
    if len(train) == 0:
        return Calibration.default()
    diag, med, weak, has_report, clinical = [], [], [], [], []
    with EvalMode(model):
        for batch in fixed_batches(train, batch_size):
            diag_logits, med_logits = model.task_logits(batch[0], batch[3])
            diag.append(torch.sigmoid(diag_logits))
            med.append(torch.sigmoid(med_logits))
            has_report.append(batch[2] > 0)
            clinical.append(batch[4] > 0)
            weak.append(batch[5])
    reported, with_record = torch.cat(has_report), torch.cat(clinical)
    diag_p, labels = torch.cat(diag)[reported].numpy(), torch.cat(weak)[reported].numpy()
    thresholds = {f: best_f1_threshold(diag_p[:, j], labels[:, j]) for j, f in enumerate(FINDINGS)}
    records = [r for r, c in zip((train.study_of(i, draw=0) for i in range(len(train))), with_record) if c]
    prescribed = [prescribed_now(r.clinical, model.drugs) for r in records]
    current = [current_medications(r.clinical, model.drugs) for r in records]
    medication, max_drugs = best_medication_threshold(model, torch.cat(med)[with_record], prescribed, current)
    return Calibration(thresholds, medication, max_drugs, len(train))


def site_calibration(model: ClinicalMedMPT, cache_dir: Path) -> Calibration:
    """:func:`calibrate` on the training side of the site's patient split (the federated runs' split)."""
    train, _ = site_split(cache_dir, max_len=model.cfg.text_max_len, graph=model.graph)
    return calibrate(model, train)
