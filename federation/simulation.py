"""Run a federated job on Flower's simulation engine (one machine, Ray underneath).

Used by ``fedmpt demo``, ``fedmpt federate`` and the end-to-end tests. Each simulated
SuperNode is one site; partition ``i`` is bound to ``site_dirs[i]``, the simulation's
stand-in for the ``site-dir`` a real SuperNode gets in its node config.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from aggregator.results_store import ResultsStore
from federation.config import FederationConfig
from federation.flower_env import configure_flower_env
from federation.server_app import RESULTS_STORE, build_server_app
from federation.site_binding import SIMULATION_AGGREGATOR_KEY_ENV, SIMULATION_SITES_ENV

logger = logging.getLogger(__name__)


class FederatedRunError(RuntimeError):
    """The ServerApp did not complete its rounds."""


def run_in_simulation(config: FederationConfig, site_dirs: list[Path]) -> dict[str, object]:
    """Run ``config`` with one simulated SuperNode per site directory; return the run's row.

    Raises
    ------
    FederatedRunError
        If the run did not finish with status ``completed`` in the results store.
    """
    if len(site_dirs) < config.min_sites:
        raise ValueError(f"{len(site_dirs)} site(s) given but min_sites={config.min_sites}")
    configure_flower_env(Path(config.workdir) / ".flwr")
    os.environ[SIMULATION_SITES_ENV] = os.pathsep.join(str(Path(d).resolve()) for d in site_dirs)
    # Simulated sites pin the simulated aggregator's key, as real ones pin it from their bundle.
    from aggregator.signing import load_or_create_signing_key

    load_or_create_signing_key(config.signing_key_path)
    os.environ[SIMULATION_AGGREGATOR_KEY_ENV] = str(config.signing_key_path.with_suffix(".pub").resolve())

    from flwr.simulation import run_simulation  # heavy import, after the env is set

    if config.secure_aggregation:  # SecAgg+ exists only on Flower's legacy path
        from federation.secagg_client import app as client_app
        from federation.secagg_server import build_secure_server_app

        server_app = build_secure_server_app(config)
    else:
        from federation.client_app import app as client_app

        server_app = build_server_app(config)

    cpus = max(1, min(len(site_dirs), os.cpu_count() or 1))
    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=len(site_dirs),
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": cpus, "include_dashboard": False},
        },
    )
    store = ResultsStore(config.aggregator_dir / RESULTS_STORE, read_only=True)
    try:
        run = next((r for r in store.runs() if r["run_id"] == config.run_name), None)
    finally:
        store.close()
    if run is None or run["status"] != "completed":
        detail = run["status_detail"] if run else "the ServerApp never started the run"
        raise FederatedRunError(f"run {config.run_name} did not complete: {detail}")
    return run
