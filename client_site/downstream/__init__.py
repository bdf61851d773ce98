"""Downstream clinical tasks on MedMPT: diagnosis, medication recommendation, report generation, drafts."""

from .clinical_features import NUM_CLINICAL_FEATURES, clinical_features
from .data import DownstreamDataset, DownstreamItem, diagnosis_targets, site_split
from .drafts import DraftConfig, StudyDraft, draft_cached_studies, draft_study, write_draft
from .drug_graph import DrugGraph, ddi_penalty, select_drugs
from .evaluate import DOWNSTREAM_METRICS, evaluate_downstream
from .feature_head import FeatureObjective, LinearFindingHead, feature_dataset
from .model import BACKBONE_PREFIX, NUM_FEATURES, ClinicalMedMPT, HeadConfig, densitometry_features
from .objective import DownstreamObjective
from .pointing import PointingResult, site_pointing_game
from .saliency import SaliencyConfig, saliency_maps

__all__ = [
    "BACKBONE_PREFIX",
    "DOWNSTREAM_METRICS",
    "NUM_CLINICAL_FEATURES",
    "NUM_FEATURES",
    "ClinicalMedMPT",
    "DownstreamDataset",
    "DownstreamItem",
    "DownstreamObjective",
    "DraftConfig",
    "DrugGraph",
    "FeatureObjective",
    "HeadConfig",
    "LinearFindingHead",
    "PointingResult",
    "SaliencyConfig",
    "StudyDraft",
    "clinical_features",
    "ddi_penalty",
    "densitometry_features",
    "diagnosis_targets",
    "draft_cached_studies",
    "draft_study",
    "evaluate_downstream",
    "feature_dataset",
    "saliency_maps",
    "select_drugs",
    "site_pointing_game",
    "site_split",
    "write_draft",
]
