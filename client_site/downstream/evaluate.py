"""Held-out evaluation of :class:`ClinicalMedMPT` on the three downstream tasks.

Each held-out patient contributes its draw-0 study (as in :mod:`client_site.evaluation`), so the
numbers are comparable across rounds and runs:

* diagnosis: per-finding ROC AUC of the finding probabilities against the site's truth labels
  (``truth/labels.csv``, read only here), and their macro average;
* report generation (studies with a reference report): greedy decoding, corpus BLEU-4, mean
  ROUGE-L and the micro finding F1 of the extractor read on generated vs reference report, each
  in the study's language (clinical efficacy, as CheXpert-labeller F1 in report generation);
  and the same finding F1 of the clinician draft (the grammar-constrained findings of
  :mod:`~client_site.downstream.draft_grammar` plus the impression, at the calibrated finding
  thresholds), which is what ``fedmpt report draft`` hands the clinician;
* medication (studies with a clinical record): Jaccard and F1 of the interaction-aware
  recommendation (at the calibrated medication threshold) vs the drugs prescribed at the visit
  (:func:`~client_site.downstream.medication_task.prescribed_now`: not the ones already taken),
  PR-AUC of the drug probabilities, and the DDI rate of the regimen the recommendation leaves
  the patient on (recommended + current medications) (GAMENet / SafeDrug definitions).

Thresholds come from a :class:`~client_site.downstream.calibration.Calibration` chosen on the
site's TRAINING patients (never on the evaluated ones); without one, 0.5. Metrics that no
held-out study can define are NaN. These numbers are computed on private data:
what leaves a site goes through :mod:`client_site.egress`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Mapping

import numpy as np
import torch

from client_site.clinical_metrics import (
    corpus_bleu,
    ddi_rate,
    findings_vector,
    label_f1,
    macro_auc,
    mean_rouge_l,
    per_finding_auc,
    pr_auc,
    set_metrics,
)
from client_site.datasets import PatientDataset, PooledPatientDataset, StudyRecord
from client_site.downstream.calibration import Calibration
from client_site.downstream.draft_grammar import draft_findings
from client_site.downstream.draft_text import draft_language, impression_text
from client_site.downstream.drug_graph import DrugPair, select_drugs
from client_site.downstream.medication_task import current_medications, prescribed_now, regimen
from client_site.downstream.model import ClinicalMedMPT
from client_site.downstream.objective import DownstreamObjective
from client_site.evaluation import EvalMode, fixed_batches
from client_site.findings import FINDINGS
from client_site.tokenizer import ReportTokenizer

logger = logging.getLogger(__name__)

DOWNSTREAM_METRICS: tuple[str, ...] = (
    "val_loss", "diag_auc_macro", *(f"diag_auc_{f}" for f in FINDINGS),
    "report_bleu4", "report_rouge_l", "report_finding_f1", "draft_finding_f1",
    "med_jaccard", "med_f1", "med_prauc", "med_ddi_rate",
)
"""Keys of :func:`evaluate_downstream`, in order."""


def evaluate_downstream(
    model: ClinicalMedMPT, dataset: PatientDataset | PooledPatientDataset,
    truth_labels: Mapping[str, np.ndarray] | None, interactions: Collection[DrugPair], *,
    batch_size: int = 8, max_report_len: int | None = None, calibration: Calibration | None = None,
) -> dict[str, float]:
    """All downstream metrics of ``model`` on ``dataset`` (held-out patients, draw 0).

    Parameters
    ----------
    model : ClinicalMedMPT
        The model; its training flag is restored afterwards.
    dataset : DownstreamDataset or PooledPatientDataset of them
        Held-out patients, items :data:`~client_site.downstream.data.DownstreamItem`.
    truth_labels : mapping or None
        Pseudonymous study key -> 0/1 findings in FINDINGS order
        (:func:`client_site.truth.load_study_labels`; merge the dicts of pooled sites). None:
        no diagnosis AUC (NaN).
    interactions : collection of frozenset of str
        Interacting drug pairs counted by the DDI rate
        (:func:`client_site.clinical_metrics.load_interactions`).
    batch_size : int
        Patients per forward pass. (default: 8)
    max_report_len : int, optional
        Generated report length in tokens (default: ``ModelConfig.text_max_len``).
    calibration : Calibration, optional
        Finding and medication thresholds chosen on the site's training patients
        (:func:`~client_site.downstream.calibration.calibrate`); default: 0.5 for all.

    Returns
    -------
    dict of str to float
        The keys of :data:`DOWNSTREAM_METRICS`: ``val_loss`` (mean per-patient fine-tuning loss),
        ``diag_auc_<finding>`` and ``diag_auc_macro`` in [0, 1], ``report_bleu4``,
        ``report_rouge_l``, ``report_finding_f1``, ``draft_finding_f1``, ``med_jaccard``, ``med_f1``, ``med_prauc``
        and ``med_ddi_rate`` in [0, 1]; NaN where undefined.
    """
    n = len(dataset)
    if n == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    records = [dataset.study_of(i, draw=0) for i in range(n)]
    calibration = calibration or Calibration.default()
    objective = DownstreamObjective()
    tokenizer = ReportTokenizer()
    losses, diag_scores, med_scores, has_clinical, has_report = [], [], [], [], []
    generated: list[str] = []
    drafted: list[str] = []
    with EvalMode(model):
        for start, batch in zip(range(0, n, batch_size), fixed_batches(dataset, batch_size)):  # type: ignore[arg-type]
            inputs = objective.model_inputs(batch)
            losses.append(model(inputs.pop("volume"), **inputs)[0])
            volume = batch[0]
            diag_logits, med_logits = model.task_logits(volume, batch[3])
            diag_scores.append(torch.sigmoid(diag_logits))
            med_scores.append(torch.sigmoid(med_logits))
            has_clinical.append(batch[4] > 0)
            with_report = batch[2] > 0
            has_report.append(with_report)
            if bool(with_report.any()):
                ids = model.generate_report(volume[with_report], max_report_len)
                generated.extend(tokenizer.decode(row) for row in ids)
                drafted.extend(_drafts(model, volume, records[start:start + len(volume)], with_report,
                                       diag_scores[-1], calibration))
    metrics = {"val_loss": float(torch.cat(losses).mean())}
    diag = torch.cat(diag_scores)
    metrics.update(_diagnosis(diag.numpy(), records, truth_labels))
    reported = torch.cat(has_report)
    metrics.update(report_metrics(generated, drafted, [r for r, rep in zip(records, reported) if rep]))
    clin = torch.cat(has_clinical)
    metrics.update(medication_metrics(model, torch.cat(med_scores)[clin], [r for r, c in zip(records, clin) if c],
                               interactions, calibration))
    logger.info("downstream evaluation of %d patients: diagnosis macro AUC %.3f, report BLEU-4 %.3f, "
                "medication F1 %.3f", n, metrics["diag_auc_macro"], metrics["report_bleu4"], metrics["med_f1"])
    return {key: metrics[key] for key in DOWNSTREAM_METRICS}


def _diagnosis(
    scores: np.ndarray, records: list[StudyRecord], truth: Mapping[str, np.ndarray] | None,
) -> dict[str, float]:
    if truth is None:
        logger.warning("no truth labels: diagnosis AUC not computed")
        return {"diag_auc_macro": math.nan, **{f"diag_auc_{f}": math.nan for f in FINDINGS}}
    unknown = [r.study_key for r in records if r.study_key not in truth]
    if unknown:
        raise ValueError(f"{len(unknown)} held-out studies have no truth label, e.g. {unknown[0]!r}")
    per_finding = per_finding_auc(np.stack([truth[r.study_key] for r in records]), scores)
    return {"diag_auc_macro": macro_auc(per_finding), **{f"diag_auc_{f}": v for f, v in per_finding.items()}}


def _drafts(
    model: ClinicalMedMPT, volume: torch.Tensor, records: list[StudyRecord], with_report: torch.Tensor,
    probabilities: torch.Tensor, calibration: Calibration,
) -> list[str]:
    """Draft text (findings + impression) of the batch's studies that have a report."""
    out = []
    for i in torch.nonzero(with_report).flatten().tolist():
        language = draft_language(records[i].language)
        row = dict(zip(FINDINGS, probabilities[i].tolist()))
        memory = model.backbone.image_memory(volume[i:i + 1])
        thresholds = calibration.finding_thresholds
        out.append(draft_findings(model.backbone, memory, row, language, thresholds=thresholds) + "\n"
                   + impression_text(row, language, thresholds=thresholds))
    return out


def report_metrics(generated: list[str], drafted: list[str], records: list[StudyRecord]) -> dict[str, float]:
    """Report metrics of the generated reports, and the finding F1 of the drafts (one text per record)."""
    if not records:
        return dict.fromkeys(("report_bleu4", "report_rouge_l", "report_finding_f1", "draft_finding_f1"), math.nan)
    references = [r.report for r in records]
    truth = [findings_vector(r.report, r.language) for r in records]
    pred = [findings_vector(text, r.language) for text, r in zip(generated, records)]
    drafts = [findings_vector(text, draft_language(r.language)) for text, r in zip(drafted, records)]
    return {
        "report_bleu4": corpus_bleu(generated, references),
        "report_rouge_l": mean_rouge_l(generated, references),
        "report_finding_f1": label_f1(truth, pred)["micro"],
        "draft_finding_f1": label_f1(truth, drafts)["micro"],
    }


def medication_metrics(
    model: ClinicalMedMPT, probabilities: torch.Tensor, records: list[StudyRecord],
    interactions: Collection[DrugPair], calibration: Calibration,
) -> dict[str, float]:
    """Jaccard, F1, PR-AUC and DDI rate of the recommendations at the calibrated threshold and list
    length against the visit's prescriptions of ``records`` (one row of drug ``probabilities`` per
    record); the DDI rate is that of recommended + current medications. NaN without records."""
    if not records:
        return dict.fromkeys(("med_jaccard", "med_f1", "med_prauc", "med_ddi_rate"), math.nan)
    prescribed = [prescribed_now(r.clinical, model.drugs) for r in records]
    current = [current_medications(r.clinical, model.drugs) for r in records]
    recommended = select_drugs(probabilities, model.major_adjacency, model.drugs, current=current,
                               threshold=calibration.medication_threshold, max_drugs=calibration.max_drugs)
    sets = set_metrics(prescribed, recommended)
    truth = torch.stack([model.graph.multi_hot(p) for p in prescribed]).numpy()
    return {
        "med_jaccard": sets["jaccard"],
        "med_f1": sets["f1"],
        "med_prauc": pr_auc(truth, probabilities.numpy()),
        "med_ddi_rate": ddi_rate([regimen(drugs, r.clinical, model.drugs) for drugs, r in zip(recommended, records)],
                                 interactions),
    }
