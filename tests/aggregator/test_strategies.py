"""Consortium aggregates skip undefined (NaN) site values, per-site privacy figures and data-QA statistics."""

import math

import pytest
from flwr.app import ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from aggregator.results_store import ResultsStore
from aggregator.site_recorder import SiteRecordingStrategy
from infra.record_keys import RecordKey
from aggregator.strategies import build_strategy, nan_aware_weighted_mean
from aggregator_helpers import FakeGrid, as_record, global_model


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


def test_data_quality_statistics_stay_per_site():
    # A count of one site's cache weighted by another's held-out patients would mean nothing.
    records = [_reply(4, val_loss=1.0, qa_studies=40.0, qa_prevalence_nodule=0.3),
               _reply(12, val_loss=2.0, qa_studies=200.0)]
    out = nan_aware_weighted_mean(records, "num-examples")
    assert set(out) == {"val_loss"}


def test_sites_sharing_different_qa_statistics_are_recorded_and_still_aggregated(tmp_path):
    # Prepare: site-b suppressed its localizer count, so the two replies have different metric names
    store = ResultsStore(tmp_path / "results.sqlite")
    inner = FedAvg(min_evaluate_nodes=2, min_available_nodes=2, evaluate_metrics_aggr_fn=nan_aware_weighted_mean)
    strategy = SiteRecordingStrategy(inner, store=store, run_id="r", checkpoint_dir=tmp_path / "ckpt")
    messages = list(strategy.configure_evaluate(1, as_record(global_model()), ConfigRecord({}), FakeGrid([7, 9])))
    shared = {7: ("site-a", {"qa_studies": 40.0, "qa_rejected_localizer": 7.0}), 9: ("site-b", {"qa_studies": 12.0})}
    replies = []
    for m in messages:
        site, qa = shared[m.metadata.dst_node_id]
        content = RecordDict({"metrics": MetricRecord({"num-examples": 4, "val_loss": 1.0, **qa}),
                              RecordKey.SITE: ConfigRecord({"name": site})})
        replies.append(Message(content, reply_to=m))

    # Execute
    metrics = strategy.aggregate_evaluate(1, replies)

    # Assert: per site in the store, in no consortium aggregate
    assert dict(metrics) == {"val_loss": 1.0}
    recorded = {(r["site"], r["metric"]): r["value"] for r in store.site_metrics("r")}
    assert recorded[("site-a", "qa_rejected_localizer")] == 7.0 and recorded[("site-b", "qa_studies")] == 12.0
    assert ("site-b", "qa_rejected_localizer") not in recorded
    assert [r["metric"] for r in store.global_metrics("r")] == ["val_loss"]


def test_unknown_strategy_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="fedavg, fedprox, fedadam"):
        build_strategy("fedsgd", min_sites=2)
