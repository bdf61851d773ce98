"""Consortium aggregates skip undefined (NaN) site values and per-site privacy figures."""

import math

import pytest
from flwr.app import MetricRecord, RecordDict

from aggregator.strategies import build_strategy, nan_aware_weighted_mean


def _reply(n, **metrics):
    return RecordDict({"metrics": MetricRecord({"num-examples": n, **metrics})})


def test_nan_sites_are_left_out_of_that_metric_only():
    records = [_reply(10, auc=0.8, loss=1.0), _reply(30, auc=math.nan, loss=3.0)]
    out = nan_aware_weighted_mean(records, "num-examples")
    assert out["auc"] == pytest.approx(0.8)
    assert out["loss"] == pytest.approx((10 * 1.0 + 30 * 3.0) / 40)
    assert "num-examples" not in out


def test_privacy_figures_are_not_averaged_across_sites():
    out = nan_aware_weighted_mean([_reply(1, epsilon=2.0), _reply(1, epsilon=6.0)], "num-examples")
    assert "epsilon" not in out


def test_unknown_strategy_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="fedavg, fedprox, fedadam"):
        build_strategy("fedsgd", min_sites=2)
