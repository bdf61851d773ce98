"""A released model's scorecard at one site: every downstream metric with a 95% bootstrap CI and n.

:func:`site_scorecard` runs at the site, on the site's machine, and nothing leaves it. It scores
the held-out side of the site's patient split (:func:`~client_site.downstream.data.site_split`,
the split the federated runs use; draw-0 study of each patient) with thresholds calibrated on
the training side (:func:`~client_site.downstream.calibration.calibrate`), so no scored patient
tunes anything. Per study it computes the diagnosis probabilities, the free-running generated
report, the clinician draft (grammar findings + impression + medications), then every metric of
:func:`~client_site.downstream.evaluate.evaluate_downstream` from those per-study results, plus
the pointing game and the DDI rate of the prescriptions on file (the reference the
recommendation's DDI rate is compared with; both are rates of the regimen after the visit, i.e.
with the current medications). Jaccard, F1 and PR-AUC count the visits with a prescription of
the visit on file (as :func:`~client_site.clinical_metrics.set_metrics` does), the DDI rates every
visit with a clinical record. Each metric's CI is the 2.5-97.5 percentile
interval of the metric over bootstrap resamples of the scored studies (Efron & Tibshirani, "An
Introduction to the Bootstrap", 1993); ``n`` is the number of studies (pointing game: of
(study, finding) pairs) the metric is computed from.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from client_site.clinical_metrics import ddi_rate, macro_auc, per_finding_auc
from client_site.datasets import StudyRecord
from client_site.downstream.calibration import Calibration, calibrate
from client_site.downstream.clinical_features import clinical_features
from client_site.downstream.data import site_split
from client_site.downstream.draft_grammar import draft_findings
from client_site.downstream.draft_text import draft_language, impression_text
from client_site.downstream.drug_graph import DrugGraph
from client_site.downstream.evaluate import medication_metrics, report_metrics
from client_site.downstream.medication_task import current_medications, prescribed_now, regimen
from client_site.downstream.model import ClinicalMedMPT
from client_site.downstream.pointing import site_pointing_game
from client_site.evaluation import EvalMode
from client_site.findings import FINDINGS
from client_site.layout import SiteLayout
from client_site.pseudonym import load_or_create_salt
from client_site.tokenizer import ReportTokenizer
from client_site.truth import load_study_labels

BOOTSTRAP_SAMPLES = 1000

FREE_GENERATION_METRICS = ("report_bleu4", "report_rouge_l", "report_finding_f1")
"""Metrics of the free-running generated report (left out with ``generation=False``)."""


@dataclass(frozen=True)
class MetricCI:
    """A metric's point estimate on all scored studies, its 95% bootstrap CI and n."""

    value: float
    ci_low: float
    ci_high: float
    n: int

    def to_json(self) -> dict[str, float | int | None]:
        """``{"value", "ci_low", "ci_high", "n"}``; NaN (undefined) as None."""
        def plain(x: float) -> float | None:
            return None if math.isnan(x) else round(float(x), 4)
        return {"value": plain(self.value), "ci_low": plain(self.ci_low), "ci_high": plain(self.ci_high),
                "n": self.n}


def bootstrap(statistic: Callable[[np.ndarray], Mapping[str, float]], n: int, *,
              samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> dict[str, MetricCI]:
    """Point estimates and percentile 95% CIs of the metrics ``statistic`` computes on n items.

    Parameters
    ----------
    statistic : Callable[[np.ndarray], Mapping[str, float]]
        Metric name -> value on the items at the given indices (with repeats).
    n : int
        Items; 0 gives NaN metrics with n 0.
    samples : int
        Bootstrap resamples. (default: 1000)
    seed : int
        Seed of the resampling. (default: 0)
    """
    full = dict(statistic(np.arange(n)))
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {name: [] for name in full}
    metrics_logger = logging.getLogger("client_site.clinical_metrics")
    level = metrics_logger.level
    metrics_logger.setLevel(logging.ERROR)  # a resample missing a class would warn on every draw
    try:
        for _ in range(samples if n else 0):
            for name, value in statistic(rng.integers(0, n, n)).items():
                draws[name].append(value)
    finally:
        metrics_logger.setLevel(level)
    out = {}
    for name, value in full.items():
        finite = np.asarray([v for v in draws[name] if not math.isnan(v)])
        low, high = (np.percentile(finite, [2.5, 97.5]) if finite.size and not math.isnan(value)
                     else (math.nan, math.nan))
        out[name] = MetricCI(float(value), float(low), float(high), n)
    return out


@dataclass
class _Scored:
    """What the model said about one held-out study."""

    record: StudyRecord
    probabilities: np.ndarray  # (len(FINDINGS),)
    truth: np.ndarray  # (len(FINDINGS),) 0/1
    generated: str
    draft: dict[str, Any]
    drug_probabilities: torch.Tensor | None


@dataclass(frozen=True)
class Scorecard:
    """Result of :func:`site_scorecard`: ``metrics`` and the per-study ``studies``."""

    metrics: dict[str, MetricCI]
    studies: list[dict[str, Any]]
    calibration: Calibration

    def to_json(self) -> dict[str, Any]:
        """``{"metrics": {name: {"value","ci_low","ci_high","n"}}, "studies": [...]}``."""
        return {"metrics": {k: v.to_json() for k, v in self.metrics.items()}, "studies": self.studies}


def site_scorecard(model: ClinicalMedMPT, site_dir: Path, *, samples: int = BOOTSTRAP_SAMPLES,
                   generation: bool = True) -> Scorecard:
    """Score ``model`` on the held-out patients of an ingested site with ground truth.

    ``generation`` False leaves out the slow parts: free-running report generation (its BLEU-4,
    ROUGE-L and finding-F1) and the pointing game (saliency maps); the drafts are scored either way.

    Raises
    ------
    FileNotFoundError
        If the site has no ``truth/labels.csv`` (the synthetic ``truth/`` folder or a labels CSV
        of docs/contracts.md).
    ValueError
        If a scored study has no truth label, or the site holds no held-out patient.
    """
    layout = SiteLayout(Path(site_dir))
    labels = load_study_labels(layout.labels_path, load_or_create_salt(layout.root))
    train, held_out = site_split(layout.cache_dir, max_len=model.cfg.text_max_len, graph=model.graph)
    if len(held_out) == 0:
        raise ValueError(f"{layout.root} has too few patients to hold any out for scoring")
    calibration = calibrate(model, train)
    graph = DrugGraph.from_csv(layout.interactions_path) if layout.interactions_path.is_file() \
        else DrugGraph.consortium()
    scored = [_score_study(model, held_out.get(i, draw=0)[0], held_out.study_of(i, draw=0), labels, calibration,
                           generate=generation) for i in range(len(held_out))]
    metrics = _metrics(model, scored, graph, calibration, samples)
    if not generation:
        metrics = {k: v for k, v in metrics.items() if k not in FREE_GENERATION_METRICS}
        return Scorecard(metrics, _study_rows(scored), calibration)
    keys = {s.study_key for i in range(len(held_out)) for s in held_out.studies_of(i)}
    pointing = site_pointing_game(model, layout.root, keys)
    hits = np.asarray(pointing.hits, dtype=float)
    metrics.update(bootstrap(lambda idx: {"pointing_game": float(hits[idx].mean()) if idx.size else math.nan},
                             len(hits), samples=samples))
    return Scorecard(metrics, _study_rows(scored), calibration)


def _study_rows(scored: list[_Scored]) -> list[dict[str, Any]]:
    return [{"study": s.record.study_key,
             "probabilities": {f: round(float(p), 4) for f, p in zip(FINDINGS, s.probabilities)},
             "truth": {f: int(t) for f, t in zip(FINDINGS, s.truth)}, "draft": s.draft} for s in scored]


def _score_study(model: ClinicalMedMPT, volume: torch.Tensor, record: StudyRecord,
                 labels: Mapping[str, np.ndarray], calibration: Calibration, *, generate: bool) -> _Scored:
    if record.study_key not in labels:
        raise ValueError(f"study {record.study_key} has no row in the site's truth labels")
    x = volume[None]
    language = draft_language(record.language)
    thresholds = calibration.finding_thresholds
    with EvalMode(model):
        _, memory = model.backbone.encode_volume(x)
        image = model.image_features(x, memory[:, -1])
        diag = torch.sigmoid(model.clinical_heads.diagnosis_logits(image))[0]
        p = dict(zip(FINDINGS, diag.tolist()))
        generated = ReportTokenizer().decode(model.generate_report(x)[0]) if record.report and generate else ""
        findings = draft_findings(model.backbone, memory, p, language, thresholds=thresholds)
        drugs: torch.Tensor | None = None
        medications: list[str] = []
        if record.clinical is not None:
            features = clinical_features(record.clinical)[None]
            drugs = torch.sigmoid(model.clinical_heads.medication_logits(image, features))[0]
            medications = model.recommend(x, features, threshold=calibration.medication_threshold,
                                          max_drugs=calibration.max_drugs,
                                          current=[current_medications(record.clinical, model.drugs)])[0]
    draft = {"findings": findings, "impression": impression_text(p, language, thresholds=thresholds),
             "medications": medications}
    return _Scored(record, diag.numpy(), np.asarray(labels[record.study_key]), generated, draft, drugs)


def _metrics(model: ClinicalMedMPT, scored: list[_Scored], graph: DrugGraph, calibration: Calibration,
             samples: int) -> dict[str, MetricCI]:
    probabilities = np.stack([s.probabilities for s in scored])
    truth = np.stack([s.truth for s in scored])

    def diagnosis(idx: np.ndarray) -> dict[str, float]:
        per_finding = per_finding_auc(truth[idx], probabilities[idx])
        return {"diag_auc_macro": macro_auc(per_finding), **{f"diag_auc_{f}": v for f, v in per_finding.items()}}

    reported = [s for s in scored if s.record.report]

    def reports(idx: np.ndarray) -> dict[str, float]:
        picked = [reported[i] for i in idx]
        return report_metrics([s.generated for s in picked],
                              [s.draft["findings"] + "\n" + s.draft["impression"] for s in picked],
                              [s.record for s in picked])

    with_record = [s for s in scored if s.drug_probabilities is not None]
    prescribed = [s for s in with_record if _on_file(s)]  # set metrics and PR-AUC skip the others

    def medication(group: list[_Scored], keys: tuple[str, ...]) -> Callable[[np.ndarray], dict[str, float]]:
        def statistic(idx: np.ndarray) -> dict[str, float]:
            picked = [group[i] for i in idx]
            probabilities = torch.stack([s.drug_probabilities for s in picked]) if picked \
                else torch.zeros(0, len(model.drugs))  # type: ignore[misc]
            values = medication_metrics(model, probabilities, [s.record for s in picked], graph.interactions,
                                        calibration)
            values["med_ddi_rate_on_file"] = ddi_rate(
                [regimen(_on_file(s), s.record.clinical, model.drugs) for s in picked], graph.interactions) \
                if picked else math.nan
            return {k: values[k] for k in keys}
        return statistic

    out = bootstrap(diagnosis, len(scored), samples=samples)
    out.update(bootstrap(reports, len(reported), samples=samples))
    out.update(bootstrap(medication(prescribed, ("med_jaccard", "med_f1", "med_prauc")), len(prescribed),
                         samples=samples))
    out.update(bootstrap(medication(with_record, ("med_ddi_rate", "med_ddi_rate_on_file")), len(with_record),
                         samples=samples))
    return out


def _on_file(scored: _Scored) -> list[str]:
    """Prescriptions of the visit on file of a scored study (lower case, none already taken)."""
    return prescribed_now(scored.record.clinical)
