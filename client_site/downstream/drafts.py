"""Clinician drafts of cached studies, written for the site's case viewer.

For one study, :func:`draft_study` runs the fine-tuned model
(:class:`~client_site.downstream.model.ClinicalMedMPT`) and composes a :class:`StudyDraft`:

* findings: one sentence per finding the diagnosis heads state (probability >= the finding's
  calibrated threshold), chosen among the sentences of a grammar by the report decoder
  (:mod:`client_site.downstream.draft_grammar`), plus pertinent negatives; lexicon words only;
* impression: the stated findings in the study's language (:func:`impression_text`);
* medications: the model's interaction-aware recommendation from the volume and the clinical
  record, at the calibrated threshold (none without a record);
* warnings: known interactions of the recommended drugs with each other and with the patient's
  current medications, each pair once, from the site's ``reference/drug_interactions.csv``
  (:func:`~client_site.clinical_metrics.interaction_warnings`);

plus an interpretability map: the SmoothGrad map of the most probable finding, kept only where it
is hottest inside the chest (:func:`~client_site.downstream.saliency.focus_region`), so the case
viewer outlines the region that drove the finding instead of tinting the whole slice. Thresholds come from
:func:`~client_site.downstream.calibration.site_calibration` on the site's training patients.
:func:`write_draft` stores them where the case viewer reads them (``cache/drafts/<key>.json``,
``cache/explanations/<key>.npy``, docs/contracts.md section 4). Everything stays in the site
directory.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from client_site.clinical_metrics import interaction_warnings, load_interaction_table
from client_site.datasets import StudyRecord, load_cache_index
from client_site.downstream.calibration import Calibration, site_calibration
from client_site.downstream.clinical_features import clinical_features
from client_site.downstream.draft_grammar import draft_findings
from client_site.downstream.draft_text import draft_language, impression_text
from client_site.downstream.drug_graph import DrugPair
from client_site.downstream.medication_task import current_medications
from client_site.downstream.model import ClinicalMedMPT
from client_site.downstream.saliency import SaliencyConfig, focus_region, saliency_maps
from client_site.evaluation import EvalMode
from client_site.findings import FINDINGS
from infra.atomic_files import write_json_atomic, write_npy_atomic
from client_site.layout import SiteLayout

logger = logging.getLogger(__name__)

NO_TABLE_WARNING = ("No drug-interaction table at this site (reference/drug_interactions.csv): "
                    "interactions were not checked.")


@dataclass(frozen=True)
class DraftConfig:
    """How drafts are made.

    Parameters
    ----------
    threshold : float | None
        Diagnosis probability from which a finding is stated, for every finding (default:
        None = the thresholds calibrated on the site's training patients).
    saliency : SaliencyConfig
        SmoothGrad settings of the interpretability map. (default: ``SaliencyConfig()``)
    """

    threshold: float | None = None
    saliency: SaliencyConfig = field(default_factory=SaliencyConfig)

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")


@dataclass(frozen=True)
class StudyDraft:
    """A drafted report of one study (the fields of ``cache/drafts/<key>.json``).

    Attributes
    ----------
    findings, impression : str
        Draft text in the study's language.
    medications : list[str]
        Recommended drugs, most probable first.
    warnings : list[str]
        Drug-interaction warnings, major first.
    language : str
        ``"en"`` or ``"zh"``.
    probabilities : dict[str, float]
        Diagnosis probability of each finding.
    explained_finding : str
        The finding whose saliency map is the study's interpretability map.
    """

    findings: str
    impression: str
    medications: list[str]
    warnings: list[str]
    language: str
    probabilities: dict[str, float]
    explained_finding: str

    def to_json(self, *, calibration: Calibration, model: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """JSON object for ``cache/drafts/<key>.json``: these fields, the thresholds and the model's provenance."""
        return {
            "findings": self.findings, "impression": self.impression, "medications": self.medications,
            "warnings": self.warnings, "language": self.language,
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
            "thresholds": calibration.to_json(), "explained_finding": self.explained_finding, "model": dict(model or {}),
        }


def draft_study(
    model: ClinicalMedMPT, volume: np.ndarray, record: StudyRecord,
    interactions: Mapping[DrugPair, tuple[str, str]] | None, *, calibration: Calibration,
    config: DraftConfig | None = None,
) -> tuple[StudyDraft, np.ndarray]:
    """Draft one study and its interpretability map.

    Parameters
    ----------
    model : ClinicalMedMPT
        The fine-tuned model (its training flag is restored).
    volume : np.ndarray
        The cached ``(3, D, H, W)`` volume.
    record : StudyRecord
        The study's ``index.json`` entry (language and clinical record).
    interactions : Mapping[frozenset[str], tuple[str, str]] | None
        :func:`~client_site.clinical_metrics.load_interaction_table` of the site; None when the
        site has none (the draft then says interactions were not checked).
    calibration : Calibration
        Finding and medication thresholds (:func:`site_calibration`; ``config.threshold`` overrides
        the finding thresholds).
    config : DraftConfig | None
        Threshold and saliency settings (default: ``DraftConfig()``).

    Returns
    -------
    draft : StudyDraft
    explanation : np.ndarray
        float16 ``(D, H, W)`` map in [0, 1] of :attr:`StudyDraft.explained_finding`, zero outside
        its focus region.
    """
    config = config or DraftConfig()
    thresholds = calibration.finding_thresholds if config.threshold is None else dict.fromkeys(
        FINDINGS, config.threshold)
    x = torch.from_numpy(np.asarray(volume, dtype=np.float32))[None]  # (1, 3, D, H, W)
    language = draft_language(record.language)
    with EvalMode(model):
        probabilities = dict(zip(FINDINGS, torch.sigmoid(model.diagnosis_logits(x))[0].tolist()))
        findings = draft_findings(model.backbone, model.backbone.image_memory(x), probabilities, language,
                                  thresholds=thresholds)
        medications: list[str] = []
        if record.clinical is not None:
            medications = model.recommend(x, clinical_features(record.clinical)[None],
                                          threshold=calibration.medication_threshold, max_drugs=calibration.max_drugs,
                                          current=[current_medications(record.clinical, model.drugs)])[0]
    current = [str(m) for m in (record.clinical or {}).get("current_medications") or ()]
    warnings = [NO_TABLE_WARNING] if interactions is None else interaction_warnings(medications, current,
                                                                                    interactions)
    impression = impression_text(probabilities, language, thresholds=thresholds)
    top = max(FINDINGS, key=lambda name: probabilities[name])
    explanation = focus_region(saliency_maps(model, x[0], findings=[top], config=config.saliency)[top], volume)
    draft = StudyDraft(
        findings=findings, impression=impression,
        medications=medications, warnings=warnings, language=language, probabilities=probabilities,
        explained_finding=top,
    )
    return draft, explanation.astype(np.float16)


def write_draft(
    cache_dir: Path, study_key: str, draft: StudyDraft, explanation: np.ndarray, *, calibration: Calibration,
    model: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Atomically write ``explanations/<key>.npy``, then ``drafts/<key>.json``; return both paths.

    ``model`` is the provenance of the weights (e.g. run and round), stored with the draft.
    """
    explanation_path = Path(cache_dir) / "explanations" / f"{study_key}.npy"
    draft_path = Path(cache_dir) / "drafts" / f"{study_key}.json"
    write_npy_atomic(explanation_path, explanation)
    write_json_atomic(draft_path, draft.to_json(calibration=calibration, model=model))
    return draft_path, explanation_path


def draft_cached_studies(
    model: ClinicalMedMPT, site_dir: Path, study_keys: Sequence[str] | None = None, *,
    config: DraftConfig | None = None, model_info: Mapping[str, Any] | None = None, progress: bool = True,
) -> tuple[dict[str, StudyDraft], Calibration]:
    """Draft and write studies of a site's cache (:func:`draft_study`, :func:`write_draft`).

    Parameters
    ----------
    model : ClinicalMedMPT
        The fine-tuned model; its input grid must be the cache's.
    site_dir : Path
        The site directory, ingested.
    study_keys : Sequence[str] | None
        Studies to draft (default: None = every cached study).
    config : DraftConfig | None
        See :class:`DraftConfig` (default: ``DraftConfig()``).
    model_info : Mapping[str, Any] | None
        Provenance of the weights, stored in each draft.
    progress : bool
        Show a tqdm progress bar on stderr (default: True).

    Returns
    -------
    drafts : dict[str, StudyDraft]
        Study key -> draft, in ``study_keys`` (or index) order.
    calibration : Calibration
        The thresholds, chosen on the site's training patients (:func:`site_calibration`).

    Raises
    ------
    KeyError
        If a requested key is not in the cache index.
    """
    config = config or DraftConfig()
    layout = SiteLayout(Path(site_dir))
    records = {r.study_key: r for r in load_cache_index(layout.cache_dir)}
    keys = list(records) if study_keys is None else list(study_keys)
    missing = [k for k in keys if k not in records]
    if missing:
        raise KeyError(f"{len(missing)} study key(s) not in {layout.cache_dir / 'index.json'}, e.g. {missing[0]!r}")
    interactions = None
    if layout.interactions_path.is_file():
        interactions = load_interaction_table(layout.interactions_path)
    else:
        logger.warning("%s is missing: drafts carry no interaction check", layout.interactions_path)
    calibration = site_calibration(model, layout.cache_dir)
    drafts = {}
    for key in tqdm(keys, desc="drafts", unit="study", file=sys.stderr, disable=not progress):
        volume = np.load(layout.cache_dir / records[key].volume, allow_pickle=False)
        draft, explanation = draft_study(model, volume, records[key], interactions, calibration=calibration,
                                         config=config)
        write_draft(layout.cache_dir, key, draft, explanation, calibration=calibration, model=model_info)
        drafts[key] = draft
    return drafts, calibration
