"""The whitelist of what a site may send: numbers under known metric names, nothing else.

Every metric leaving the site passes through :func:`release_metrics`; a name not listed
here is refused, so a new metric has to be added deliberately (and reviewed) before it can
travel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from client_site.findings import FINDINGS
from client_site.ingestion.errors import RejectCode
from client_site.ingestion.qa import PIXEL_BINS, SPACING_BINS

# Training releases the DP-noised weights and the privacy bookkeeping only: a training loss is a
# statistic of the training patients without noise, so none leaves the site.
TRAIN_METRICS = frozenset({
    "num-examples", "steps", "sample_rate", "noise_multiplier", "epsilon", "delta", "epsilon_budget",
    # the budget split: each stage's epsilon (its segments alone) and the most it may spend
    "epsilon_ssl", "epsilon_fine_tuning", "epsilon_ssl_cap", "epsilon_fine_tuning_cap",
})
# Downstream evaluation of a fine-tuned model (client_site.downstream.evaluate): means over the
# site's held-out patients; pointing_game comes from the saliency evaluation.
DOWNSTREAM_EVALUATE_METRICS = frozenset({
    "diag_auc_macro", *(f"diag_auc_{finding}" for finding in FINDINGS),
    "report_bleu4", "report_rouge_l", "report_finding_f1", "draft_finding_f1",
    "med_jaccard", "med_f1", "med_prauc", "med_ddi_rate",
    "pointing_game",
})
# Data-QA statistics of `fedmpt ingest --qa` (client_site.ingestion.qa.qa_metrics): aggregates over
# the whole site, small counts already suppressed there (a suppressed number is simply absent).
# Every name is qa_<family>_<member> from these closed vocabularies, or one of _QA_SINGLE; nothing
# in a name comes from the data, so the set is closed (tests check it is exactly what qa_metrics
# can produce).
_SPACING_LABELS = (*(label for label, _, _ in SPACING_BINS), "unknown")
_QA_FAMILIES: dict[str, tuple[str, ...]] = {
    "files": ("seen", "accepted", "rejected"),
    "rejected": tuple(code.value for code in RejectCode),  # files rejected, per rejection code
    "series": ("seen", "accepted", "rejected", "not_selected"),
    "series_per_study": ("1", "2", "3", "4plus"),  # studies with that many series
    "planes": ("axial", "coronal", "sagittal", "oblique"),  # cached studies per acquisition plane
    "slice_spacing": _SPACING_LABELS,  # histograms: studies per bin (mm)
    "slice_thickness": _SPACING_LABELS,
    "pixel_spacing": (*(label for label, _, _ in PIXEL_BINS), "unknown"),
    "hu_p01": ("p10", "p50", "p90"),  # percentiles across studies (>= 5) of each study's 1st HU percentile
    "hu_p99": ("p10", "p50", "p90"),  # ... and of its 99th
    "prevalence": FINDINGS,  # fraction of linked reports asserting the finding
}
_QA_SINGLE = ("studies", "patients", "gantry_tilted_studies", "studies_without_air", "report_coverage",
              "studies_with_report", "reports_unlinked_or_rejected")
QA_METRICS = frozenset({
    *(f"qa_{family}_{member}" for family, members in _QA_FAMILIES.items() for member in members),
    *(f"qa_{name}" for name in _QA_SINGLE),
})
EVALUATE_METRICS = frozenset({
    "num-examples", "val_loss", "val_mim_loss", "val_mlm_loss", "val_caption_loss",
    "probe_auc_macro", "probe_findings_defined",
    *(f"probe_auc_{finding}" for finding in FINDINGS),
    *QA_METRICS,
    *DOWNSTREAM_EVALUATE_METRICS,
})
ALLOWED = {"train": TRAIN_METRICS, "evaluate": EVALUATE_METRICS}


EVALUATE_DECIMALS = 3
"""Evaluation metrics leave rounded to this many decimals (counts are whole numbers anyway)."""


def release_metrics(phase: str, metrics: Mapping[str, float]) -> dict[str, float]:
    """Check ``metrics`` against the whitelist of ``phase`` and return them as floats.

    NaN is allowed (an undefined metric, e.g. an AUC over one class); anything else that is
    not a finite number, and any name not whitelisted, raises ``ValueError``. Evaluation
    metrics are rounded to :data:`EVALUATE_DECIMALS` decimals.
    """
    allowed = ALLOWED[phase]
    released: dict[str, float] = {}
    for name, value in metrics.items():
        if name not in allowed:
            raise ValueError(f"metric {name!r} is not on the site's {phase} egress whitelist")
        number = float(value)
        if math.isinf(number):
            raise ValueError(f"metric {name!r} is infinite; refusing to send it")
        released[name] = round(number, EVALUATE_DECIMALS) if phase == "evaluate" else number
    return released
