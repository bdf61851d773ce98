"""What federated DP SSL adds to the encoder: the same linear probe before and after it.

The probe is the diagnosis benchmark's FedAvg head (:mod:`experiments.baselines.head_arms`) on
the frozen encoder's scan embedding alone, without DP and at the benchmark's largest epsilon,
trained on the same sites' training patients and scored on the same held-out and external
patients. "Before" is the benchmark's encoder; "after" is that encoder once the training sites
ran ``rounds`` of federated DP self-supervised pretraining through the real federation (Flower
simulation, each site's runtime, Opacus, its own ledger) with the settings ``make demo`` uses
(:class:`federation.config.FederationConfig` defaults). Only the sites' training patients take
part in SSL; the held-out, external and public patients never do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from experiments.baselines.diagnosis import DiagnosisBenchmark
from experiments.baselines.report import Comparison

PROBE_FEATURES = "embedding"
INITIAL, AFTER_SSL = "initial-encoder", "ssl-encoder"


def probe_arms(bench: DiagnosisBenchmark, out: Comparison, encoder: str,
               on_arm: Callable[[str], None] | None = None) -> None:
    """Add the probe of ``bench``'s embedding to ``out``: ``probe-<encoder>`` without DP and
    ``probe-<encoder>-dp-eps<E>`` at the largest epsilon of the benchmark."""
    top = max(bench.config.epsilons)
    for name, epsilon in ((f"probe-{encoder}", None), (f"probe-{encoder}-dp-eps{top:g}", top)):
        if on_arm:
            on_arm(name)
        bench.federated_arm(out, name, epsilon=epsilon, features=PROBE_FEATURES)


def federated_ssl(workdir: Path, site_dirs: list[Path], start: dict[str, torch.Tensor], *, rounds: int,
                  seed: int, preset: str) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """Run ``rounds`` of federated DP SSL over ``site_dirs`` from ``start``; return the global
    weights after the last round and what the run was (name, settings, each site's SSL epsilon).

    Raises
    ------
    federation.simulation.FederatedRunError
        If the run did not complete (a site refused, e.g. its budget is spent).
    """
    from aggregator.checkpoints import latest_checkpoint, save_signed_checkpoint
    from aggregator.results_store import ResultsStore
    from aggregator.signing import load_or_create_signing_key
    from federation.config import FederationConfig
    from federation.init_weights import load_init_state
    from federation.simulation import run_in_simulation

    run = f"ssl-probe-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    config = FederationConfig(workdir=str(workdir), run_name=run, num_rounds=rounds, seed=seed,
                              model_preset=preset, min_sites=len(site_dirs))
    key = load_or_create_signing_key(config.signing_key_path)
    init = save_signed_checkpoint(config.aggregator_dir / "checkpoints" / f"{run}-init", 0, {"model": start},
                                  run_id=f"{run}-init", key=key)  # the probed encoder, exactly
    config = replace(config, init_checkpoint=str(init))
    run_in_simulation(config, site_dirs)
    last = latest_checkpoint(config.checkpoint_dir)
    if last is None:
        raise RuntimeError(f"SSL run {run} left no checkpoint in {config.checkpoint_dir}")
    store = ResultsStore(config.aggregator_dir / "results.sqlite")
    try:
        spent = {r["site"]: r["value"] for r in store.site_metrics(run) if r["metric"] == "epsilon_ssl"}
    finally:
        store.close()
    settings = {
        "SSL probe": f"{rounds} federated DP SSL rounds (run {run}: sigma {config.noise_multiplier}, "
                     f"{config.local_steps} steps x expected batch {config.expected_batch_size}, "
                     f"lr {config.lr}, clip {config.max_grad_norm}) from the benchmark's encoder",
        "SSL epsilon per site": ", ".join(f"{site} {value:.2f}" for site, value in sorted(spent.items())),
        "probe": f"the FedAvg head on the scan embedding alone ({PROBE_FEATURES}), same split",
    }
    return load_init_state(last, public_key=key.public_key()), settings
