"""Invalid site updates are rejected before aggregation and recorded per site with a reason."""

import numpy as np
import pytest
from flwr.app import ConfigRecord
from flwr.serverapp.strategy import FedAvg

from aggregator.results_store import ResultsStore
from aggregator.site_recorder import SiteRecordingStrategy
from aggregator.update_validation import ValidationPolicy, check_reply, norm_outliers
from aggregator_helpers import FakeGrid, as_record, global_model, honest_update, reply_to

NODES = [101, 102, 103, 104, 105]


def _round(tmp_path, updates, validation=ValidationPolicy()):
    """Run one training round of SiteRecordingStrategy(FedAvg) over the given site updates."""
    store = ResultsStore(tmp_path / "results.sqlite")
    n = len(updates)
    strategy = SiteRecordingStrategy(
        FedAvg(min_train_nodes=n, min_available_nodes=n), store=store, run_id="r",
        checkpoint_dir=tmp_path / "ckpt", validation=validation,
    )
    reference = global_model()
    messages = list(strategy.configure_train(1, as_record(reference), ConfigRecord({}),
                                             FakeGrid(NODES[:n])))
    replies = [reply_to(m, arrays, site=f"site-{i}")
               for i, (m, arrays) in enumerate(zip(messages, updates, strict=True))]
    arrays, _ = strategy.aggregate_train(1, replies)
    status = {p["site"]: (p["status"], p["reason"]) for p in store.participation("r")}
    return reference, arrays, status


def test_nan_wrong_shape_and_scaled_updates_are_rejected_and_recorded(tmp_path):
    # Prepare: 2 honest sites, one NaN, one wrong shape, one update scaled x100
    reference = global_model()
    honest = [honest_update(reference, seed) for seed in (1, 2)]
    nan = honest_update(reference, 3)
    nan["encoder.bias"][0] = np.nan
    wrong_shape = honest_update(reference, 4)
    wrong_shape["head.weight"] = np.zeros((2, 4), np.float32)
    scaled = {k: reference[k] + 100 * (v - reference[k]) for k, v in honest_update(reference, 5).items()}

    # Execute
    _, arrays, status = _round(tmp_path, [*honest, nan, wrong_shape, scaled])

    # Assert: each bad update rejected with its reason, the honest ones averaged alone
    assert status["site-0"] == ("ok", None) and status["site-1"] == ("ok", None)
    assert status["site-2"][0] == "rejected" and "NaN" in status["site-2"][1]
    assert status["site-3"][0] == "rejected" and "expected shape (4, 2), got (2, 4)" in status["site-3"][1]
    assert status["site-4"][0] == "rejected" and "median" in status["site-4"][1]
    expected = {k: (honest[0][k] + honest[1][k]) / 2 for k in reference}
    for key, value in expected.items():
        np.testing.assert_allclose(arrays[key].numpy(), value, rtol=1e-6)


def test_wrong_keys_and_dtype_are_rejected(tmp_path):
    reference = global_model()
    extra = {**honest_update(reference, 1), "backdoor.weight": np.ones(3, np.float32)}
    float64 = {k: v.astype(np.float64) for k, v in honest_update(reference, 2).items()}

    _, arrays, status = _round(tmp_path, [honest_update(reference, 0), extra, float64])

    assert "unexpected backdoor.weight" in status["site-1"][1]
    assert "expected dtype float32, got float64" in status["site-2"][1]
    assert status["site-0"][0] == "ok" and arrays is not None


def test_all_updates_rejected_leaves_the_model_unchanged(tmp_path):
    reference = global_model()
    bad = [{**honest_update(reference, s), "encoder.bias": np.full(4, np.inf, np.float32)} for s in (1, 2)]

    _, arrays, status = _round(tmp_path, bad)

    assert arrays is None  # Flower keeps the previous global model
    assert {s for s, _ in status.values()} == {"rejected"}


def test_validation_can_be_switched_off(tmp_path):
    reference = global_model()
    scaled = {k: reference[k] + 100 * (v - reference[k]) for k, v in honest_update(reference, 5).items()}

    _, _, status = _round(tmp_path, [honest_update(reference, 1), scaled], validation=None)

    assert {s for s, _ in status.values()} == {"ok"}


def test_missing_weight_metric_is_rejected_rather_than_crashing_flower():
    reference = global_model()
    from flwr.app import MetricRecord, RecordDict

    content = RecordDict({"arrays": as_record(reference), "metrics": MetricRecord({"loss": 1.0})})

    verdict = check_reply(content, reference)

    assert not verdict.accepted and "num-examples" in verdict.reason


@pytest.mark.parametrize("norms, rejected", [
    ({"a": 1.0, "b": 1.1, "c": 0.9}, set()),
    ({"a": 1.0, "b": 1.1, "c": 100.0}, {"c"}),
    ({"a": 1.0, "b": 100.0}, {"b"}),  # two sites: each is compared with the other
    ({"a": 5.0}, set()),               # a lone site has nothing to be compared with
])
def test_norm_rule_uses_the_median_of_the_other_sites(norms, rejected):
    assert set(norm_outliers(norms, factor=10.0)) == rejected
