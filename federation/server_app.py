"""The aggregator's Flower ServerApp: initial model, strategy, rounds, results store.

Resume (``resume = true``): the
newest checkpoint of the run that verifies under the aggregator key gives the initial arrays,
the FedAdam moments and ``k`` rounds done; Flower then runs ``num_rounds - k`` rounds and the
strategy wrapper numbers them ``k + 1 ... num_rounds``.

Replies reach the strategy through :class:`aggregator.reply_spill.SpillingGrid`: their arrays
wait in files under ``<aggregator_dir>/spill/<run_name>`` until read, so the ServerApp's memory
does not grow with the number of sites.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import Result, Strategy

from aggregator.checkpoints import latest_good_checkpoint
from aggregator.quorum import QuorumNotMet, require_quorum
from aggregator.reply_spill import SpillingGrid
from aggregator.results_store import ResultsStore
from aggregator.signing import load_or_create_signing_key
from aggregator.site_recorder import SiteRecordingStrategy
from aggregator.strategies import build_strategy, import_strategy_state
from aggregator.update_validation import ValidationPolicy
from client_site.tasks import build_model
from federation.config import FederationConfig
from federation.init_weights import load_init_state
from federation.log_setup import configure_logging
from federation.presets import get_preset

logger = logging.getLogger(__name__)

RESULTS_STORE = "results.sqlite"


class ResumeError(RuntimeError):
    """A run cannot continue from its checkpoints."""


def initial_arrays(config: FederationConfig) -> ArrayRecord:
    """Seeded initial global model of the run's task and preset, from ``init-checkpoint`` if set."""
    init_state = None
    if config.init_checkpoint:
        key = load_or_create_signing_key(config.signing_key_path)
        init_state = load_init_state(Path(config.init_checkpoint), public_key=key.public_key())
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(config.seed)  # nn.Module init draws from the global generator
        model = build_model(config.task, get_preset(config.model_preset).model, init_state=init_state)
    finally:
        torch.random.set_rng_state(generator_state)
    return ArrayRecord(model.state_dict())


def load_registry(path: str) -> tuple[dict[int, str] | None, dict[int, int] | None]:
    """Registered node id -> site name, and -> registered patients (``fedmpt consortium add-site``).

    (None, None) when no registry is set; sizes are None unless every active site has one.
    """
    if not path:
        return None, None
    entries = json.loads(Path(path).read_text(encoding="utf-8"))
    active = {int(e["node_id"]): (str(name), e.get("patients")) for name, e in entries.items()
              if e.get("node_id") is not None and not e.get("revoked")}
    sizes = {node: int(size) for node, (_, size) in active.items() if size is not None}
    return {node: name for node, (name, _) in active.items()}, sizes if len(sizes) == len(active) else None


def resume_point(config: FederationConfig, strategy_obj: object) -> tuple[int, ArrayRecord | None]:
    """Rounds already done and the global model to continue from (0, None: start afresh)."""
    key = load_or_create_signing_key(config.signing_key_path)
    found = latest_good_checkpoint(config.checkpoint_dir, key.public_key())
    if found is None:
        logger.warning("resume: no good checkpoint in %s; starting run %s from round 1",
                       config.checkpoint_dir, config.run_name)
        return 0, None
    state = found.state
    if state.get("config_hash") != config.config_hash():
        raise ResumeError(
            f"{found.path.name} was written with config hash {str(state.get('config_hash'))[:12]}, "
            f"but this run's is {config.config_hash()[:12]}: resume with the run's original "
            f"settings (strategy, seed, preset, DP and validation options)"
        )
    import_strategy_state(strategy_obj, state.get("strategy_state", {}))  # type: ignore[arg-type]
    logger.info("resume: continuing run %s after round %d from %s%s", config.run_name,
                state["round"], found.path.name,
                f" ({len(found.refused)} newer checkpoint(s) refused)" if found.refused else "")
    return int(state["round"]), ArrayRecord(state["model"])


def run_rounds(grid: Grid, config: FederationConfig) -> Result | None:
    """Run ``config.num_rounds`` federated rounds, recording every site's results.

    A round in which fewer than ``min_sites`` sites trained (:class:`QuorumNotMet`) is tried
    again from the last good checkpoint, up to ``round_retries`` times; then the run fails. The
    results store is closed however a try ends; a try that raised is marked failed in it.
    Returns None when a resumed run had already completed all its rounds.
    """
    for retry in range(config.round_retries + 1):
        try:
            return _run_rounds_once(grid, config if retry == 0 else dataclasses.replace(config, resume=True))
        except QuorumNotMet as e:
            if retry == config.round_retries:
                raise
            logger.warning("%s; retrying from the last good checkpoint (retry %d of %d)",
                           e, retry + 1, config.round_retries)
    raise AssertionError("unreachable: the last retry returns or raises")


def _run_rounds_once(grid: Grid, config: FederationConfig) -> Result | None:
    inner = build_strategy(
        config.strategy,
        min_sites=config.min_sites,
        proximal_mu=config.proximal_mu,
        server_lr=config.server_lr,
        aggregation=config.aggregation,
        trim_beta=config.trim_beta,
    )
    require_quorum(inner, min_sites=config.min_sites)
    store = ResultsStore(config.aggregator_dir / RESULTS_STORE)
    try:
        store.start_run(config.run_name, strategy=config.strategy, num_rounds=config.num_rounds,
                        config=config.as_run_config())
        try:
            result = _run_recorded(grid, config, inner, store)
        except BaseException as e:
            store.finish_run(config.run_name, status="failed", detail=f"{type(e).__name__}: {e}")
            raise
        store.finish_run(config.run_name, status="completed")
        return result
    finally:
        store.close()


def _run_recorded(grid: Grid, config: FederationConfig, inner: Strategy, store: ResultsStore) -> Result | None:
    done, arrays = resume_point(config, inner) if config.resume else (0, None)
    if done >= config.num_rounds:
        logger.info("run %s already has all %d rounds", config.run_name, config.num_rounds)
        return None
    registry, sizes = load_registry(config.site_registry)
    strategy = SiteRecordingStrategy(
        inner,
        store=store,
        run_id=config.run_name,
        checkpoint_dir=config.checkpoint_dir,
        validation=ValidationPolicy(norm_factor=config.norm_factor, norm_bound=config.update_norm_bound),
        signing_key=load_or_create_signing_key(config.signing_key_path),
        registry=registry,
        registered_sizes=sizes,
        round_offset=done,
        checkpoint_extra={"config_hash": config.config_hash(),
                          "config": {k: v for k, v in config.as_run_config().items()
                                     if k not in ("signing-key", "site-registry", "workdir")}},
    )
    spilling = SpillingGrid(grid, config.aggregator_dir / "spill" / config.run_name)
    try:
        return strategy.start(
            grid=spilling,
            initial_arrays=arrays if arrays is not None else initial_arrays(config),
            num_rounds=config.num_rounds - done,
            timeout=config.round_timeout_s,
            train_config=ConfigRecord(config.site_request()),
            evaluate_config=ConfigRecord(config.site_request()),
        )
    finally:
        spilling.close()


def build_server_app(config: FederationConfig) -> ServerApp:
    """A ServerApp bound to a config (simulation runs, where run_config is not available)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_rounds(grid, config)

    return app


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Deployment entry point: the run's configuration comes from ``flwr run --run-config``."""
    configure_logging()  # a fresh flwr-serverapp process: show resume decisions, refusals, rounds
    run_rounds(grid, FederationConfig.from_run_config(context.run_config))
