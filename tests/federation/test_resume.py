"""Resume after an aggregator crash continues from the last signed checkpoint, with fresh noise.

The real ServerApp (``run_rounds``) and ClientApp (DP training, signature check) run over an
in-process Grid; the same check through Flower's simulation engine is in docs/deployment.md.
"""

import dataclasses

import pytest

from aggregator.checkpoints import checkpoint_path, latest_good_checkpoint
from aggregator.results_store import ResultsStore
from client_site.layout import SiteLayout
from infra.signatures import load_public_key
from federation.config import FederationConfig
from federation.server_app import ResumeError, resume_point, run_rounds
from federation_helpers import InProcessGrid
from privacy.ledger import PrivacyLedger


pytestmark = pytest.mark.usefixtures("task_identity")


def _config(workdir, run_name, rounds, **kw):
    return FederationConfig(workdir=str(workdir), run_name=run_name, num_rounds=rounds,
                            model_preset="tiny", local_steps=2, expected_batch_size=4,
                            noise_multiplier=1.0, min_sites=2, **kw)


def _final_digest(config):
    key = load_public_key(config.signing_key_path.with_suffix(".pub"))
    return latest_good_checkpoint(config.checkpoint_dir, key).state


def _run(config, site_dirs):
    # Sites pin the aggregator key of this workdir, so every model they train is verified.
    from aggregator.signing import load_or_create_signing_key

    load_or_create_signing_key(config.signing_key_path)
    grid = InProcessGrid(site_dirs, aggregator_key=config.signing_key_path.with_suffix(".pub"))
    return run_rounds(grid, config)


def _segments(site_dir, run_id):
    ledger = PrivacyLedger(SiteLayout(site_dir).ledger_path)
    return [e["round"] for e in ledger.entries if e["event"] == "segment_started" and e["run_id"] == run_id]


@pytest.fixture(scope="module")
def runs(tiny_sites, tmp_path_factory):
    """A straight 2-round FedAdam run, and one stopped after round 1 then resumed to 2."""
    sites = tiny_sites[:2]
    workdir = tmp_path_factory.mktemp("resume")
    straight = _config(workdir, "straight", 2, strategy="fedadam")
    _run(straight, sites)
    _run(_config(workdir, "resumed", 1, strategy="fedadam"), sites)  # "crash" after round 1
    round_1 = checkpoint_path(_config(workdir, "resumed", 1).checkpoint_dir, 1).read_bytes()
    resumed = _config(workdir, "resumed", 2, strategy="fedadam", resume=True)
    _run(resumed, sites)
    return workdir, straight, resumed, round_1


def test_resumed_run_continues_from_its_checkpoint_with_fresh_noise(runs, tiny_sites):
    _, straight, resumed, round_1 = runs
    a, b = _final_digest(straight), _final_digest(resumed)

    assert a["round"] == b["round"] == 2
    assert checkpoint_path(resumed.checkpoint_dir, 1).read_bytes() == round_1  # not trained again
    assert set(b["strategy_state"]) == {"m_t", "v_t"}  # FedAdam moments were carried over
    assert a["arrays_digest"] != b["arrays_digest"]  # same seed and rounds, but the sites' own noise
    for site_dir in tiny_sites[:2]:  # each round trained, hence charged, once per run
        assert _segments(site_dir, "straight") == [1, 2]
        assert _segments(site_dir, "resumed") == [1, 2]


def test_resumed_run_is_recorded_once_per_round(runs):
    workdir, _, resumed, _ = runs
    store = ResultsStore(workdir / "aggregator" / "results.sqlite", read_only=True)
    run = next(r for r in store.runs() if r["run_id"] == "resumed")
    rounds = sorted({(p["round"], p["phase"]) for p in store.participation("resumed")})

    assert run["status"] == "completed" and run["num_rounds"] == 2
    assert rounds == [(1, "evaluate"), (1, "train"), (2, "evaluate"), (2, "train")]
    assert {p["status"] for p in store.participation("resumed")} == {"ok"}


def test_resume_skips_a_tampered_checkpoint_and_refuses_another_config(runs):
    _, straight, _, _ = runs
    path = checkpoint_path(straight.checkpoint_dir, 2)
    path.write_bytes(path.read_bytes()[:-10])  # truncated

    done, arrays = resume_point(dataclasses.replace(straight, num_rounds=3, resume=True),
                                _strategy())
    with pytest.raises(ResumeError, match="config hash"):
        resume_point(dataclasses.replace(straight, seed=1, resume=True), _strategy())

    assert done == 1 and arrays is not None


def _strategy():
    from aggregator.strategies import build_strategy

    return build_strategy("fedadam", min_sites=2)
