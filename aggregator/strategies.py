"""Flower strategies the consortium can choose, with NaN-aware metric averaging.

FedAvg (McMahan et al. 2017), FedProx (Li et al. 2020; the proximal term is applied by the
site), FedAdam (Reddi et al. 2021). All come from ``flwr.serverapp.strategy``.
"""

from __future__ import annotations

import math

from flwr.app import MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

STRATEGIES = ("fedavg", "fedprox", "fedadam")

# Each site's own privacy position: an average over sites would mean nothing, so these are
# kept per site (results store) and left out of the consortium aggregate.
PER_SITE_ONLY = frozenset({"epsilon", "delta", "epsilon_budget"})


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
            if key == weighting_key or key in PER_SITE_ONLY or not isinstance(value, (int, float)):
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
    """
    common = dict(
        min_train_nodes=min_sites,
        min_evaluate_nodes=min_sites,
        min_available_nodes=min_sites,
        train_metrics_aggr_fn=nan_aware_weighted_mean,
        evaluate_metrics_aggr_fn=nan_aware_weighted_mean,
    )
    if name == "fedavg":
        return FedAvg(**common)  # type: ignore[arg-type]
    if name == "fedprox":
        return FedProx(proximal_mu=proximal_mu, **common)  # type: ignore[arg-type]
    if name == "fedadam":
        return FedAdam(eta=server_lr, **common)  # type: ignore[arg-type]
    raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
