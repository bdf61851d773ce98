"""Flower strategies the consortium can choose, with NaN-aware metric averaging.

FedAvg (McMahan et al. 2017), FedProx (Li et al. 2020; the proximal term is applied by the
site, :mod:`client_site.proximal`), FedAdam (Reddi et al. 2021). All come from ``flwr.serverapp.strategy``. With FedAvg,
the weighted mean can be replaced by a robust aggregate: the coordinate-wise median (FedMedian,
Yin et al. 2018) or the trimmed mean (FedTrimmedAvg, same paper).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from flwr.app import MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAdam, FedAvg, FedMedian, FedProx, FedTrimmedAvg, Strategy

from aggregator.auto_robust import AutoRobustFedAvg
from infra.compat import FEDOPT_MOMENT_ATTRIBUTES  # server-side optimiser state: moments per array key

STRATEGIES = ("fedavg", "fedprox", "fedadam")
AGGREGATIONS = ("auto", "mean", "median", "trimmed-mean")

# Each site's own privacy position: an average over sites would mean nothing, so these are
# kept per site (results store) and left out of the consortium aggregate.
PER_SITE_ONLY = frozenset({"epsilon", "delta", "epsilon_budget"})
# Likewise each site's data-QA statistics (``fedmpt ingest --qa``): counts and fractions of the
# site's whole cache, which a mean weighted by held-out patients would turn into nonsense (and
# a site that suppressed a small count would silently drop out of it).
PER_SITE_ONLY_PREFIXES = ("qa_",)


def is_per_site_only(name: str) -> bool:
    """Whether metric ``name`` is recorded per site only, never averaged across sites."""
    return name in PER_SITE_ONLY or name.startswith(PER_SITE_ONLY_PREFIXES)


def nan_aware_weighted_mean(records: list[RecordDict], weighting_key: str) -> MetricRecord:
    """Weighted mean of each metric over the sites that defined it.

    A site reports NaN for a metric it cannot compute (e.g. an AUC when its held-out
    patients have a single class); Flower's default averaging would turn the consortium
    value into NaN, so such sites are left out of that metric's mean only.
    """
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    for record in records:
        metrics = next(iter(record.metric_records.values()))
        weight = float(metrics[weighting_key])  # type: ignore[arg-type]
        for key, value in metrics.items():
            if key == weighting_key or is_per_site_only(key) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(float(value)):
                sums[key] = sums.get(key, 0.0) + weight * float(value)
                weights[key] = weights.get(key, 0.0) + weight
    return MetricRecord(
        {key: sums[key] / weights[key] for key in sums if weights[key] > 0}
    )


def build_strategy(
    name: str,
    *,
    min_sites: int,
    proximal_mu: float = 0.01,
    server_lr: float = 0.01,
    aggregation: str = "auto",
    trim_beta: float = 0.2,
) -> FedAvg:
    """Create a strategy by name.

    Parameters
    ----------
    name : str
        One of ``fedavg``, ``fedprox``, ``fedadam``.
    min_sites : int
        Sites that must be connected and sampled for a round to start.
    proximal_mu : float
        FedProx proximal weight (default: 0.01).
    server_lr : float
        FedAdam server learning rate eta (default: 0.01).
    aggregation : str
        ``auto``: with ``fedavg``, the trimmed mean from three sites in a round on and the
        weighted mean below (:class:`~aggregator.auto_robust.AutoRobustFedAvg`); with
        ``fedprox`` / ``fedadam``, their own mean. ``mean`` (weighted by ``num-examples``), or
        with ``fedavg`` only the robust ``median`` (FedMedian) or ``trimmed-mean``
        (FedTrimmedAvg). (default: ``auto``)
    trim_beta : float
        Fraction cut at each end by the trimmed mean, in [0, 0.5). (default: 0.2)
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; expected one of {', '.join(AGGREGATIONS)}")
    if aggregation not in ("auto", "mean") and name != "fedavg":
        raise ValueError(
            f"robust aggregation {aggregation!r} replaces FedAvg's mean; use strategy 'fedavg' "
            f"with it, not {name!r}"
        )
    common = dict(
        min_train_nodes=min_sites,
        min_evaluate_nodes=min_sites,
        min_available_nodes=min_sites,
        train_metrics_aggr_fn=nan_aware_weighted_mean,
        evaluate_metrics_aggr_fn=nan_aware_weighted_mean,
    )
    if name == "fedavg" and aggregation == "auto":
        return AutoRobustFedAvg(trim_beta=trim_beta, **common)
    if name == "fedavg" and aggregation == "median":
        return FedMedian(**common)  # type: ignore[arg-type]
    if name == "fedavg" and aggregation == "trimmed-mean":
        return FedTrimmedAvg(beta=trim_beta, **common)  # type: ignore[arg-type]
    if name == "fedavg":
        return FedAvg(**common)  # type: ignore[arg-type]
    if name == "fedprox":
        return FedProx(proximal_mu=proximal_mu, **common)  # type: ignore[arg-type]
    if name == "fedadam":
        return FedAdam(eta=server_lr, **common)  # type: ignore[arg-type]
    raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")


def export_strategy_state(strategy: Strategy) -> dict[str, Any]:
    """Server-side optimiser state to checkpoint (FedAdam's ``m_t`` and ``v_t``; else empty)."""
    state: dict[str, Any] = {}
    for name in FEDOPT_MOMENT_ATTRIBUTES:
        moments = getattr(strategy, name, None)
        if moments:
            state[name] = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in moments.items()}
    return state


def import_strategy_state(strategy: Strategy, state: dict[str, Any]) -> None:
    """Restore what :func:`export_strategy_state` saved (resume after a crash)."""
    for name, moments in state.items():
        if name not in FEDOPT_MOMENT_ATTRIBUTES or not hasattr(strategy, name):
            raise ValueError(
                f"checkpoint holds strategy state {name!r} that {type(strategy).__name__} does not "
                f"have; resume with the strategy the run started with"
            )
        setattr(strategy, name, {k: v.numpy() for k, v in moments.items()})
