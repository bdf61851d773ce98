"""Clinician drafts of cached studies, written for the site's case viewer.

For one study, :func:`draft_study` runs the fine-tuned model
(:class:`~client_site.downstream.model.ClinicalMedMPT`) and composes a :class:`StudyDraft`:

* findings: the generated report's findings section, cleaned (:func:`clean_findings_text`);
* impression: the findings whose diagnosis probability reaches the threshold, in the study's
  language (:func:`impression_text`);
* medications: the model's interaction-aware recommendation from the volume and the clinical
  record (none without a record);
* warnings: known interactions of the recommended drugs with each other and with the patient's
  current medications, from the site's ``reference/drug_interactions.csv``;

plus an interpretability map: the SmoothGrad map of the most probable finding
(:mod:`client_site.downstream.saliency`). :func:`write_draft` stores them where the case viewer
reads them (``cache/drafts/<key>.json``, ``cache/explanations/<key>.npy``, docs/contracts.md
section 4). Everything stays in the site directory.
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

from client_site.clinical_metrics import load_interaction_table
from client_site.datasets import StudyRecord, load_cache_index
from client_site.downstream.clinical_features import clinical_features
from client_site.downstream.draft_text import (
    FINDING_THRESHOLD,
    DrugPair,
    draft_language,
    draft_report,
    interaction_warnings,
)
from client_site.downstream.model import ClinicalMedMPT
from client_site.downstream.saliency import SaliencyConfig, saliency_maps
from client_site.evaluation import EvalMode
from client_site.findings import FINDINGS
from infra.atomic_files import write_json_atomic, write_npy_atomic
from client_site.layout import SiteLayout
from client_site.tokenizer import ReportTokenizer

logger = logging.getLogger(__name__)

NO_TABLE_WARNING = ("No drug-interaction table at this site (reference/drug_interactions.csv): "
                    "interactions were not checked.")


@dataclass(frozen=True)
class DraftConfig:
    """How drafts are made.

    Parameters
    ----------
    threshold : float
        Diagnosis probability from which a finding enters the impression. (default: 0.5)
    max_report_len : int | None
        Generated report length in tokens (default: None = ``ModelConfig.text_max_len``).
    saliency : SaliencyConfig
        SmoothGrad settings of the interpretability map. (default: ``SaliencyConfig()``)
    """

    threshold: float = FINDING_THRESHOLD
    max_report_len: int | None = None
    saliency: SaliencyConfig = field(default_factory=SaliencyConfig)

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
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

    def to_json(self, *, threshold: float, model: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """JSON object for ``cache/drafts/<key>.json``: these fields, the threshold and the model's provenance."""
        return {
            "findings": self.findings, "impression": self.impression, "medications": self.medications,
            "warnings": self.warnings, "language": self.language,
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
            "threshold": threshold, "explained_finding": self.explained_finding, "model": dict(model or {}),
        }


def draft_study(
    model: ClinicalMedMPT, volume: np.ndarray, record: StudyRecord,
    interactions: Mapping[DrugPair, tuple[str, str]] | None, *, config: DraftConfig | None = None,
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
    config : DraftConfig | None
        Threshold and saliency settings (default: ``DraftConfig()``).

    Returns
    -------
    draft : StudyDraft
    explanation : np.ndarray
        float16 ``(D, H, W)`` map in [0, 1] of :attr:`StudyDraft.explained_finding`.
    """
    config = config or DraftConfig()
    x = torch.from_numpy(np.asarray(volume, dtype=np.float32))[None]  # (1, 3, D, H, W)
    with EvalMode(model):
        probabilities = dict(zip(FINDINGS, torch.sigmoid(model.diagnosis_logits(x))[0].tolist()))
        text = ReportTokenizer().decode(model.generate_report(x, config.max_report_len)[0])
        medications: list[str] = []
        if record.clinical is not None:
            medications = model.recommend(x, clinical_features(record.clinical)[None])[0]
    language = draft_language(record.language, text)
    current = [str(m) for m in (record.clinical or {}).get("medications") or ()]
    warnings = [NO_TABLE_WARNING] if interactions is None else interaction_warnings(medications, current,
                                                                                    interactions)
    findings, impression = draft_report(text, probabilities, language, threshold=config.threshold)
    top = max(FINDINGS, key=lambda name: probabilities[name])
    explanation = saliency_maps(model, x[0], findings=[top], config=config.saliency)[top]
    draft = StudyDraft(
        findings=findings, impression=impression,
        medications=medications, warnings=warnings, language=language, probabilities=probabilities,
        explained_finding=top,
    )
    return draft, explanation.astype(np.float16)


def write_draft(
    cache_dir: Path, study_key: str, draft: StudyDraft, explanation: np.ndarray, *, threshold: float,
    model: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Atomically write ``explanations/<key>.npy``, then ``drafts/<key>.json``; return both paths.

    ``model`` is the provenance of the weights (e.g. run and round), stored with the draft.
    """
    explanation_path = Path(cache_dir) / "explanations" / f"{study_key}.npy"
    draft_path = Path(cache_dir) / "drafts" / f"{study_key}.json"
    write_npy_atomic(explanation_path, explanation)
    write_json_atomic(draft_path, draft.to_json(threshold=threshold, model=model))
    return draft_path, explanation_path


def draft_cached_studies(
    model: ClinicalMedMPT, site_dir: Path, study_keys: Sequence[str] | None = None, *,
    config: DraftConfig | None = None, model_info: Mapping[str, Any] | None = None, progress: bool = True,
) -> dict[str, StudyDraft]:
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
    dict[str, StudyDraft]
        Study key -> draft, in ``study_keys`` (or index) order.

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
    drafts = {}
    for key in tqdm(keys, desc="drafts", unit="study", file=sys.stderr, disable=not progress):
        volume = np.load(layout.cache_dir / records[key].volume, allow_pickle=False)
        draft, explanation = draft_study(model, volume, records[key], interactions, config=config)
        write_draft(layout.cache_dir, key, draft, explanation, threshold=config.threshold, model=model_info)
        drafts[key] = draft
    return drafts
