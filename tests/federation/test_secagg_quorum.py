"""A SecAgg+ round below ``min_sites`` fails the run, never "completed", as on the default path.

Flower's ``SecAggPlusWorkflow`` unmasks and aggregates whatever passes its reconstruction
threshold (2 of 3 sites by default), and when fewer sites answer a stage it logs "Secure
aggregation halted." and returns; the legacy round loop then went on as if the round had been
aggregated. Both used to end in a "completed" run.
"""

import copy

import pytest
from flwr.app import Context, Error, Message, RecordDict
from flwr.supercore.run import Run

from aggregator.quorum import QuorumNotMet, SecureAggregationHalted
from aggregator.results_store import ResultsStore
from federation.config import FederationConfig
from federation.secagg_client import app as secure_client_app
from federation.secagg_server import run_secure_rounds
from federation.server_app import RESULTS_STORE
from federation_helpers import InProcessGrid

pytestmark = pytest.mark.usefixtures("task_identity")


class _SecureSitesInProcess(InProcessGrid):
    """The real SecAgg+ ClientApp of each site, answering in this process."""

    run = Run.create_empty(run_id=1)

    def __init__(self, site_dirs):
        super().__init__(site_dirs, app=secure_client_app)
        self.sent = 0

    def send_and_receive(self, messages, *, timeout=None):
        # Flower serializes each message; without a copy the first site's mod would consume
        # the stage config the workflow shares between the messages of a stage.
        ids = self.push_messages([copy.deepcopy(m) for m in messages])
        self.sent += len(ids)
        return self.pull_messages(ids)


class _UnreachableSites(_SecureSitesInProcess):
    """Sites that never answer: every message comes back as Flower's "Node Unavailable" error."""

    def deliver(self, message):
        return Message(Error(code=5, reason="Node Unavailable"), reply_to=message)


def _run_row(config, run_name):
    store = ResultsStore(config.aggregator_dir / RESULTS_STORE, read_only=True)
    try:
        return next(r for r in store.runs() if r["run_id"] == run_name), store.participation(run_name)
    finally:
        store.close()


def test_round_with_two_of_three_masked_updates_fails_before_unmasking(tiny_sites, tmp_path):
    # Prepare: two real sites and one whose site directory does not exist (it fails its fit)
    config = FederationConfig(workdir=str(tmp_path), run_name="secagg-quorum", num_rounds=1, min_sites=3,
                              model_preset="tiny", local_steps=1, expected_batch_size=4,
                              noise_multiplier=1.0, secure_aggregation=True, update_norm_bound=1.0)
    grid = _SecureSitesInProcess([*tiny_sites[:2], tmp_path / "no-such-site"])
    context = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={})

    # Execute: Flower's threshold (2 of 3) would unmask these two updates
    with pytest.raises(QuorumNotMet, match=r"round 1: 2 of the required 3 site\(s\) trained"):
        run_secure_rounds(grid, context, config)

    # Assert: set-up, key sharing and masked updates went out, the unmask stage never did
    assert grid.sent == 3 * 3
    assert not list(config.checkpoint_dir.glob("round_*.pt"))
    run, participation = _run_row(config, "secagg-quorum")
    assert run["status"] == "failed" and "2 of the required 3" in run["status_detail"]
    assert sorted(p["status"] for p in participation) == ["failed", "ok", "ok"]
    assert "the site failed" in next(p["reason"] for p in participation if p["status"] == "failed")


def test_halted_secure_round_fails_the_run(tmp_path):
    """Every site unreachable (each message comes back as "Node Unavailable"): set-up halts."""
    # Prepare: the legacy loop registers the grid's nodes as client proxies itself
    config = FederationConfig(workdir=str(tmp_path), run_name="halted", num_rounds=1, min_sites=3,
                              model_preset="tiny", secure_aggregation=True, round_timeout_s=5.0)
    grid = _UnreachableSites([tmp_path / name for name in ("a", "b", "c")])
    context = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={})

    # Execute
    with pytest.raises(SecureAggregationHalted, match="round 1: secure aggregation halted"):
        run_secure_rounds(grid, context, config)

    # Assert: the set-up messages went out, nothing was checkpointed, the store says failed
    assert grid.sent == 3  # the set-up stage only
    assert not list(config.checkpoint_dir.glob("round_*.pt"))
    run, _ = _run_row(config, "halted")
    assert run["status"] == "failed" and "secure aggregation halted" in run["status_detail"]
