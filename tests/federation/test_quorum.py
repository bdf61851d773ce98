"""A round in which fewer than ``min_sites`` sites trained fails (after its retries), never "completed"."""

import pytest

from aggregator.checkpoints import latest_checkpoint
from aggregator.quorum import QuorumNotMet
from aggregator.results_store import ResultsStore
from aggregator.signing import load_or_create_signing_key
from federation.config import FederationConfig
from federation.server_app import RESULTS_STORE, run_rounds
from federation_helpers import InProcessGrid

pytestmark = pytest.mark.usefixtures("task_identity")


class _CountingGrid(InProcessGrid):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_messages = 0

    def deliver(self, message):
        self.train_messages += message.metadata.message_type == "train"
        return super().deliver(message)


def test_round_with_one_of_two_required_sites_fails_the_run_after_its_retry(tiny_sites, tmp_path):
    # Prepare: one real site and one whose site directory does not exist (it refuses every task)
    config = FederationConfig(workdir=str(tmp_path), run_name="quorum", num_rounds=2, min_sites=2,
                              round_retries=1, model_preset="tiny", local_steps=1,
                              expected_batch_size=4, noise_multiplier=1.0)
    load_or_create_signing_key(config.signing_key_path)
    grid = _CountingGrid([tiny_sites[0], tmp_path / "no-such-site"],
                         aggregator_key=config.signing_key_path.with_suffix(".pub"))

    # Execute
    with pytest.raises(QuorumNotMet, match="round 1: 1 of the required 2 site"):
        run_rounds(grid, config)

    # Assert: tried twice, nothing aggregated or checkpointed, the store says why
    assert grid.train_messages == 4  # 2 sites x (the round + its retry)
    assert latest_checkpoint(config.checkpoint_dir) is None
    store = ResultsStore(config.aggregator_dir / RESULTS_STORE, read_only=True)
    run = next(r for r in store.runs() if r["run_id"] == "quorum")
    rows = {(p["round"], p["phase"], p["status"]) for p in store.participation("quorum")}
    store.close()
    assert run["status"] == "failed" and "1 of the required 2 site(s) trained" in run["status_detail"]
    assert rows == {(1, "train", "ok"), (1, "train", "failed")}
