"""Downstream clinical tasks on MedMPT: diagnosis, medication recommendation, report generation."""

from .clinical_features import NUM_CLINICAL_FEATURES, clinical_features
from .data import DownstreamDataset, DownstreamItem, diagnosis_targets, site_split
from .drug_graph import DrugGraph, ddi_penalty, select_drugs
from .evaluate import DOWNSTREAM_METRICS, evaluate_downstream
from .model import BACKBONE_PREFIX, ClinicalMedMPT, HeadConfig
from .objective import DownstreamObjective

__all__ = [
    "BACKBONE_PREFIX",
    "DOWNSTREAM_METRICS",
    "NUM_CLINICAL_FEATURES",
    "ClinicalMedMPT",
    "DownstreamDataset",
    "DownstreamItem",
    "DownstreamObjective",
    "DrugGraph",
    "HeadConfig",
    "clinical_features",
    "ddi_penalty",
    "diagnosis_targets",
    "evaluate_downstream",
    "select_drugs",
    "site_split",
]
