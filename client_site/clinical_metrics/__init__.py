"""Clinical metrics for the downstream tasks: finding extractor, diagnosis, reports, medication, pointing game."""

from .diagnosis import macro_auc, per_finding_auc, per_finding_roc
from .extractor import detect_language, extract_findings, finding_term, findings_vector, split_clauses
from .finding_f1 import label_f1, report_finding_f1
from .medication import (
    ddi_rate,
    interaction_pairs,
    interaction_warnings,
    load_interaction_table,
    load_interactions,
    pr_auc,
    set_metrics,
)
from .pointing_game import pointing_game, pointing_hit
from .text_overlap import corpus_bleu, mean_rouge_l, rouge_l, tokenize

__all__ = [
    "corpus_bleu",
    "ddi_rate",
    "detect_language",
    "extract_findings",
    "finding_term",
    "findings_vector",
    "interaction_pairs",
    "interaction_warnings",
    "label_f1",
    "load_interaction_table",
    "load_interactions",
    "macro_auc",
    "mean_rouge_l",
    "per_finding_auc",
    "per_finding_roc",
    "pointing_game",
    "pointing_hit",
    "pr_auc",
    "report_finding_f1",
    "rouge_l",
    "set_metrics",
    "split_clauses",
    "tokenize",
]
