"""The whitelist of what a site may send: numbers under known metric names, nothing else.

Every metric leaving the site passes through :func:`release_metrics`; a name not listed
here is refused, so a new metric has to be added deliberately (and reviewed) before it can
travel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from client_site.findings import FINDINGS

TRAIN_METRICS = frozenset({
    "num-examples", "train_loss", "mim_loss", "mlm_loss", "caption_loss", "steps",
    "sample_rate", "noise_multiplier", "epsilon", "delta", "epsilon_budget", "train_seconds",
})
EVALUATE_METRICS = frozenset({
    "num-examples", "val_loss", "val_mim_loss", "val_mlm_loss", "val_caption_loss",
    "probe_auc_macro", "probe_findings_defined",
    *(f"probe_auc_{finding}" for finding in FINDINGS),
})
ALLOWED = {"train": TRAIN_METRICS, "evaluate": EVALUATE_METRICS}


def release_metrics(phase: str, metrics: Mapping[str, float]) -> dict[str, float]:
    """Check ``metrics`` against the whitelist of ``phase`` and return them as floats.

    NaN is allowed (an undefined metric, e.g. an AUC over one class); anything else that is
    not a finite number, and any name not whitelisted, raises ``ValueError``.
    """
    allowed = ALLOWED[phase]
    released: dict[str, float] = {}
    for name, value in metrics.items():
        if name not in allowed:
            raise ValueError(f"metric {name!r} is not on the site's {phase} egress whitelist")
        number = float(value)
        if math.isinf(number):
            raise ValueError(f"metric {name!r} is infinite; refusing to send it")
        released[name] = number
    return released
