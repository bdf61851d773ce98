"""The aggregator's ServerApp for rounds under secure aggregation (Flower SecAgg+, legacy path).

SecAgg+ (Bell et al., "Secure single-server aggregation with (poly)logarithmic overhead",
CCS 2020) lets the aggregator learn only the weighted sum of the sites' updates: each site
masks its quantized update with pairwise masks (agreed by Diffie-Hellman) and a private mask,
and Shamir-shares its secrets so that the masks of a site that drops out can still be removed.
Flower 1.41 implements it as :class:`flwr.server.workflow.SecAggPlusWorkflow` on the legacy
strategy API only, so this module wraps a legacy ``FedAvg`` that

* averages the sites' *updates* (the workflow already returns their weighted mean) and adds it
  to the global model it sent;
* records what it can still see per site (the DP metrics, which stay in the clear, and who
  took part or refused) and checkpoints the global model like the Message-API app, so the
  results store, dashboard and ``fedmpt audit mia`` work unchanged.

What it cannot do any more is look at one site's update: norm bounds move to the sites
(:mod:`federation.secagg_client`). See docs/secure-aggregation.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from flwr.app import Context
from flwr.common import (
    EvaluateRes,
    FitRes,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server import LegacyContext, ServerApp, ServerConfig
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.server.workflow.secure_aggregation.secaggplus_workflow import WorkflowState
from flwr.serverapp import Grid

from aggregator.checkpoints import save_signed_checkpoint
from aggregator.quorum import QuorumNotMet, SecureAggregationHalted
from aggregator.results_store import ResultsStore
from aggregator.signing import load_or_create_signing_key
from aggregator.strategies import is_per_site_only
from federation.config import FederationConfig
from federation.server_app import RESULTS_STORE, initial_arrays

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SecAggSettings:
    """SecAgg+ protocol parameters (see ``SecAggPlusWorkflow``).

    Parameters
    ----------
    num_shares : float
        Fraction of the sampled sites each site shares its secrets with. (default: 1.0)
    reconstruction_threshold : float
        Fraction of those shares needed to reconstruct a secret, i.e. to unmask; more is
        safer against colluding sites, less tolerates more drop-outs. (default: 0.67)
    max_weight : float
        Largest ``num-examples`` of a site; the weight is quantized relative to it. (default: 1000)
    quantization_range : int
        Fixed-point levels over ``[-update_norm_bound, update_norm_bound]``. (default: 2**24)
    """

    num_shares: float = 1.0
    reconstruction_threshold: float = 0.67
    max_weight: float = 1000.0
    quantization_range: int = 2**24


def _numeric(metrics: dict[str, Scalar]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _reason(failure: object) -> str:
    """The site's own message out of a failure (Flower wraps it in a long remote traceback)."""
    text = str(failure[1] if isinstance(failure, tuple) else failure)
    if "Message: " in text:  # ClientAppException: "... occurred. Message: <site's message>"
        return text.rsplit("Message: ", 1)[1].strip().rstrip("'>)\"").strip()
    return text[-2000:]


class SecureFedAvg(FedAvg):
    """Legacy FedAvg over SecAgg+-aggregated updates, recording sites and checkpoints.

    Parameters
    ----------
    config : FederationConfig
        The run; its ``site_request()`` (norm bound included) is every site's fit/evaluate config.
    store : ResultsStore
        Results store of the aggregator.
    """

    def __init__(self, *, config: FederationConfig, store: ResultsStore) -> None:
        state = initial_arrays(config).to_torch_state_dict()
        self._keys = list(state)
        self._global = [t.numpy() for t in state.values()]
        request = config.site_request()
        n = config.min_sites
        super().__init__(
            min_fit_clients=n, min_evaluate_clients=n, min_available_clients=n,
            initial_parameters=ndarrays_to_parameters(self._global),
            on_fit_config_fn=lambda rnd: {**request, "server-round": rnd},
            on_evaluate_config_fn=lambda rnd: {**request, "server-round": rnd},
        )
        self.config, self.store = config, store
        self.signing_key = load_or_create_signing_key(config.signing_key_path)
        self.checkpoint_dir = config.checkpoint_dir
        self.aggregated_rounds: set[int] = set()

    def configure_fit(self, server_round: int, parameters: Parameters, client_manager: ClientManager):  # type: ignore[no-untyped-def]
        """Remember the global model the sites will compute their updates against."""
        self._global = parameters_to_ndarrays(parameters)
        return super().configure_fit(server_round, parameters, client_manager)

    def record(self, rnd: int, phase: str, results: list[tuple[ClientProxy, FitRes | EvaluateRes]],
               failures: list[object]) -> None:
        """Record each result's site metrics and participation, and each failure's reason."""
        for proxy, res in results:
            site = str(res.metrics.get("site", f"node-{proxy.node_id}"))
            self.store.record_site_metrics(self.config.run_name, rnd, phase, site, _numeric(res.metrics))
            self.store.record_participation(self.config.run_name, rnd, phase, node_id=str(proxy.node_id),
                                            site=site, status="ok")
        # SecAgg+ failures carry no node id, and the workflow lists each one twice
        reasons = dict.fromkeys(_reason(f) for f in failures)
        for i, reason in enumerate(reasons):
            logger.warning("round %d %s: a site failed or refused: %s", rnd, phase, reason)
            self.store.record_participation(self.config.run_name, rnd, phase, node_id=f"unknown-{i}",
                                            site=None, status="failed", reason=reason)

    def aggregate_fit(self, server_round, results, failures):  # type: ignore[no-untyped-def]
        """New global = sent global + the securely aggregated mean update."""
        self.record(server_round, "train", results, failures)
        if not results:
            return None, {}
        # SecAggPlusWorkflow put the same unmasked weighted mean in every result.
        mean_update = parameters_to_ndarrays(results[0][1].parameters)
        new = [(g + u).astype(g.dtype) for g, u in zip(self._global, mean_update, strict=True)]
        state = {k: torch.from_numpy(np.array(a)) for k, a in zip(self._keys, new, strict=True)}
        save_signed_checkpoint(self.checkpoint_dir, server_round,
                               {"model": state, "secure_aggregation": True},
                               run_id=self.config.run_name, key=self.signing_key)
        metrics = self._mean_metrics([(r.num_examples, r.metrics) for _, r in results])
        self.store.record_global_metrics(self.config.run_name, server_round, "train", metrics)
        self.aggregated_rounds.add(server_round)
        return ndarrays_to_parameters(new), metrics

    def aggregate_evaluate(self, server_round, results, failures):  # type: ignore[no-untyped-def]
        """Record each site's validation metrics, then their weighted mean."""
        self.record(server_round, "evaluate", results, failures)
        if not results:
            return None, {}
        metrics = self._mean_metrics([(r.num_examples, r.metrics) for _, r in results])
        self.store.record_global_metrics(self.config.run_name, server_round, "evaluate", metrics)
        return metrics.get("val_loss"), metrics

    @staticmethod
    def _mean_metrics(rows: list[tuple[int, dict[str, Scalar]]]) -> dict[str, float]:
        sums: dict[str, float] = {}
        weights: dict[str, float] = {}
        for n, metrics in rows:
            for key, value in _numeric(metrics).items():
                if is_per_site_only(key) or key == "num-examples" or not np.isfinite(value):
                    continue
                sums[key] = sums.get(key, 0.0) + n * value
                weights[key] = weights.get(key, 0.0) + n
        return {k: sums[k] / weights[k] for k in sums if weights[k] > 0}


class QuorumSecAggPlusWorkflow(SecAggPlusWorkflow):
    """SecAgg+ that fails a round with fewer than ``min_sites`` masked updates, before unmasking.

    Flower's workflow unmasks whatever survived its reconstruction threshold (2 of 3 sites by
    default), and when it halts it just returns, so the run went on and was reported completed.
    Here a round with fewer than ``min_sites`` masked updates raises :class:`QuorumNotMet`
    (its participation recorded first), as the Message-API path does, and a halted round raises
    :class:`SecureAggregationHalted`; :func:`run_secure_rounds` then fails the run.
    """

    def __init__(self, strategy: SecureFedAvg, *, min_sites: int, **workflow_options: object) -> None:
        super().__init__(**workflow_options)  # type: ignore[arg-type]
        self.strategy, self.min_sites = strategy, min_sites

    @staticmethod
    def _round(context: LegacyContext) -> int:
        return int(context.state.config_records[MAIN_CONFIGS_RECORD][WorkflowKey.CURRENT_ROUND])

    def __call__(self, grid: Grid, context: Context) -> None:
        """Run one SecAgg+ round; raise if it ended without an aggregate."""
        super().__call__(grid, context)
        server_round = self._round(context)  # type: ignore[arg-type]
        if server_round not in self.strategy.aggregated_rounds:
            raise SecureAggregationHalted(
                f"round {server_round}: secure aggregation halted before aggregating (too few sites "
                f"answered a SecAgg+ stage; min_sites={self.min_sites}); see the aggregator's log")

    def collect_masked_vectors_stage(self, grid: Grid, context: LegacyContext, state: WorkflowState) -> bool:
        """Collect the masked updates; below ``min_sites`` of them, record who failed and raise."""
        proceed = super().collect_masked_vectors_stage(grid, context, state)
        if len(state.active_node_ids) < self.min_sites:
            server_round = self._round(context)
            self.strategy.record(server_round, "train", state.legacy_results, state.failures)
            raise QuorumNotMet(server_round, len(state.active_node_ids), self.min_sites)
        return proceed


def run_secure_rounds(grid: Grid, context: Context, config: FederationConfig,
                      settings: SecAggSettings | None = None) -> None:
    """Run ``config.num_rounds`` SecAgg+ rounds, recording them like :func:`run_rounds`."""
    if not config.secure_aggregation:
        raise ValueError("config.secure_aggregation is false: use federation.server_app instead")
    # "auto" (the default) is the mean here: the aggregator never sees single updates to trim.
    if config.strategy != "fedavg" or config.aggregation not in ("auto", "mean"):
        raise ValueError(
            f"secure aggregation only yields the weighted mean of the updates: use strategy='fedavg' "
            f"and aggregation='mean' or 'auto', got {config.strategy!r} / {config.aggregation!r}"
        )
    if config.min_sites < 3:
        raise ValueError(f"SecAgg+ needs at least 3 sites per round, got min_sites={config.min_sites}")
    settings = settings or SecAggSettings()
    store = ResultsStore(config.aggregator_dir / RESULTS_STORE)
    store.start_run(config.run_name, strategy="fedavg+secagg", num_rounds=config.num_rounds,
                    config=config.as_run_config())
    strategy = SecureFedAvg(config=config, store=store)
    legacy = LegacyContext(
        context=context,
        config=ServerConfig(num_rounds=config.num_rounds, round_timeout=config.round_timeout_s),
        strategy=strategy,
    )
    workflow = DefaultWorkflow(fit_workflow=QuorumSecAggPlusWorkflow(
        strategy, min_sites=config.min_sites, num_shares=settings.num_shares, reconstruction_threshold=settings.reconstruction_threshold,
        max_weight=settings.max_weight, clipping_range=config.update_norm_bound,
        quantization_range=settings.quantization_range, timeout=config.round_timeout_s,
    ))
    try:
        workflow(grid, legacy)
    except BaseException as e:
        store.finish_run(config.run_name, status="failed", detail=f"{type(e).__name__}: {e}")
        store.close()
        raise
    store.finish_run(config.run_name, status="completed")
    store.close()


def build_secure_server_app(config: FederationConfig, settings: SecAggSettings | None = None) -> ServerApp:
    """A SecAgg+ ServerApp bound to a config (simulation runs)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_secure_rounds(grid, context, config, settings)

    return app


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Deployment entry point: ``flwr run --run-config 'secure-aggregation=true ...'``."""
    run_secure_rounds(grid, context, FederationConfig.from_run_config(context.run_config))
