"""The aggregator's Flower ServerApp: initial model, strategy, rounds, results store."""

from __future__ import annotations

import logging

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import Result

from aggregator.results_store import ResultsStore
from aggregator.site_recorder import SiteRecordingStrategy
from aggregator.strategies import build_strategy
from client_site.model import MedMPT
from federation.config import FederationConfig
from federation.presets import get_preset

logger = logging.getLogger(__name__)

RESULTS_STORE = "results.sqlite"


def initial_arrays(config: FederationConfig) -> ArrayRecord:
    """Seeded initial global model of the run's preset."""
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(config.seed)  # nn.Module init draws from the global generator
        model = MedMPT(get_preset(config.model_preset).model)
    finally:
        torch.random.set_rng_state(generator_state)
    return ArrayRecord(model.state_dict())


def run_rounds(grid: Grid, config: FederationConfig) -> Result:
    """Run ``config.num_rounds`` federated rounds, recording every site's results."""
    store = ResultsStore(config.aggregator_dir / RESULTS_STORE)
    strategy = SiteRecordingStrategy(
        build_strategy(
            config.strategy,
            min_sites=config.min_sites,
            proximal_mu=config.proximal_mu,
            server_lr=config.server_lr,
        ),
        store=store,
        run_id=config.run_name,
        checkpoint_dir=config.aggregator_dir / "checkpoints" / config.run_name,
    )
    store.start_run(
        config.run_name,
        strategy=config.strategy,
        num_rounds=config.num_rounds,
        config=config.as_run_config(),
    )
    request = ConfigRecord(config.site_request())
    try:
        result = strategy.start(
            grid=grid,
            initial_arrays=initial_arrays(config),
            num_rounds=config.num_rounds,
            timeout=config.round_timeout_s,
            train_config=request,
            evaluate_config=ConfigRecord(config.site_request()),
        )
    except BaseException as e:
        store.finish_run(config.run_name, status="failed", detail=f"{type(e).__name__}: {e}")
        raise
    store.finish_run(config.run_name, status="completed")
    store.close()
    return result


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
    run_rounds(grid, FederationConfig.from_run_config(context.run_config))
