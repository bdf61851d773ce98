"""Threat: one malicious site takes over the global model. It reports an enormous
``num-examples`` (1e12) so that the weighted mean is its own update, or sends an update far
larger than the honest ones (with two sites, the old relative test let 10x the honest norm pass).

Defence: a site's weight is bounded by what the aggregator knows (the registered number of
patients, else equal weights); every update must stay inside the run's absolute
``update-norm-bound`` (honest sites clip to it themselves); with three or more sites the
default aggregation is the trimmed mean.
"""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from aggregator.results_store import ResultsStore
from aggregator.site_recorder import SiteRecordingStrategy
from aggregator.strategies import build_strategy
from aggregator.update_validation import ValidationPolicy
from federation.config import FederationConfig

DEFAULTS = FederationConfig()
REFERENCE = {"w": np.zeros(1000, np.float32)}


@pytest.fixture(autouse=True)
def _with_task_identity(task_identity):
    """Flower messages built outside a runtime need a task identity (tests/conftest.py)."""


class _Grid:
    def __init__(self, nodes):
        self.nodes = nodes

    def get_node_ids(self):
        return list(self.nodes)


def _direction(seed, norm):
    v = np.random.default_rng(seed).normal(size=1000)
    return (norm * v / np.linalg.norm(v)).astype(np.float32)


def _round(tmp_path, updates, examples, registered_sizes=None):
    """One training round of the aggregator as the ServerApp builds it (default config)."""
    strategy = SiteRecordingStrategy(
        build_strategy(DEFAULTS.strategy, min_sites=len(updates), aggregation=DEFAULTS.aggregation,
                       trim_beta=DEFAULTS.trim_beta),
        store=ResultsStore(tmp_path / "results.sqlite"), run_id="r", checkpoint_dir=tmp_path / "ckpt",
        validation=ValidationPolicy(norm_factor=DEFAULTS.norm_factor, norm_bound=DEFAULTS.update_norm_bound),
        registered_sizes=registered_sizes)
    nodes = list(range(1, len(updates) + 1))
    messages = list(strategy.configure_train(1, ArrayRecord({"w": Array(REFERENCE["w"])}), ConfigRecord({}),
                                             _Grid(nodes)))
    replies = [Message(RecordDict({
        "arrays": ArrayRecord({"w": Array(updates[m.metadata.dst_node_id - 1])}),
        "metrics": MetricRecord({"num-examples": examples[m.metadata.dst_node_id - 1], "loss": 1.0}),
        "site": ConfigRecord({"name": f"site-{m.metadata.dst_node_id}"})}), reply_to=m) for m in messages]
    arrays, _ = strategy.aggregate_train(1, replies)
    store = strategy.store
    return arrays["w"].numpy(), store.participation("r")


def _cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("sites, registered", [(2, None), (2, {1: 50, 2: 50}), (3, None), (5, None)])
def test_a_site_reporting_1e12_examples_does_not_take_over(tmp_path, sites, registered):
    # Prepare: honest sites move one way, the last site another way, claiming 1e12 patients
    honest = [_direction(0, 2.0) + _direction(10 + i, 0.5) for i in range(sites - 1)]
    attacker = _direction(99, 2.0)
    # Execute
    merged, _ = _round(tmp_path, [*honest, attacker], [50] * (sites - 1) + [1e12], registered)
    # Assert: the global model is not the attacker's target (it was, cosine 1.0, before)
    assert _cosine(merged - REFERENCE["w"], attacker) < 0.8
    assert _cosine(merged - REFERENCE["w"], honest[0]) > 0.5


def test_with_two_sites_an_update_ten_times_the_honest_norm_is_rejected(tmp_path):
    # Prepare: an honest update of norm 2 (under the default bound) and one of norm 20
    honest, attacker = _direction(0, 2.0), _direction(1, 20.0)
    # Execute
    merged, participation = _round(tmp_path, [honest, attacker], [50, 50])
    # Assert
    status = {p["site"]: (p["status"], p["reason"]) for p in participation}
    assert status["site-1"] == ("ok", None)
    assert status["site-2"][0] == "rejected" and "update-norm-bound" in status["site-2"][1]
    np.testing.assert_allclose(merged, honest)
