"""``fedmpt federate``: federated DP rounds over local site directories (Flower simulation)."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.errors import MissingInput
from cli.run_options import (AGGREGATION, EXPECTED_BATCH_SIZE, LOCAL_STEPS, LR, MAX_GRAD_NORM, MIN_SITES,
                             NOISE_MULTIPLIER, NORM_FACTOR, OPTIMIZER, PRESET, PROXIMAL_MU, ROUND_RETRIES,
                             ROUNDS, RUN_NAME, SEED, STRATEGY, TASK, UPDATE_NORM_BOUND)


def federate(
    sites: list[Path] = typer.Argument(..., help="Site directories, one simulated SuperNode each."),
    workdir: Path = typer.Option(Path("fedmpt-demo"), help="Aggregator state goes to WORKDIR/aggregator."),
    rounds: int = ROUNDS,
    strategy: str = STRATEGY,
    proximal_mu: float = PROXIMAL_MU,
    local_steps: int = LOCAL_STEPS,
    expected_batch_size: int = EXPECTED_BATCH_SIZE,
    noise_multiplier: float = NOISE_MULTIPLIER,
    lr: float = LR,
    optimizer: str = OPTIMIZER,
    max_grad_norm: float = MAX_GRAD_NORM,
    preset: str = PRESET,
    run_name: str = RUN_NAME,
    resume: bool = typer.Option(False, help="Continue RUN_NAME from its last good signed checkpoint."),
    aggregation: str = AGGREGATION,
    norm_factor: float = NORM_FACTOR,
    seed: int = SEED,
    task: str = TASK,
    init_checkpoint: Path = typer.Option(
        None, "--init-checkpoint",
        help="Round checkpoint or state dict initialising the global model (finetune: the backbone)."),
    secure_aggregation: bool = typer.Option(
        False, "--secure-aggregation",
        help="SecAgg+: the aggregator sees only the sum of updates (>= 3 sites, fedavg, mean)."),
    update_norm_bound: float = UPDATE_NORM_BOUND,
    min_sites: int = MIN_SITES,
    round_retries: int = ROUND_RETRIES,
) -> None:
    """Run federated DP rounds over local site directories on Flower's simulation engine."""
    from federation.config import FederationConfig
    from federation.simulation import run_in_simulation

    config = FederationConfig(workdir=str(workdir), num_rounds=rounds, strategy=strategy,
                              proximal_mu=proximal_mu,
                              local_steps=local_steps, noise_multiplier=noise_multiplier,
                              expected_batch_size=expected_batch_size, lr=lr, optimizer=optimizer,
                              max_grad_norm=max_grad_norm,
                              model_preset=preset, run_name=run_name,
                              min_sites=max(min_sites, len(sites)) if secure_aggregation else min_sites,
                              resume=resume,
                              aggregation=aggregation, norm_factor=norm_factor, seed=seed,
                              task=task, init_checkpoint=str(init_checkpoint or ""),
                              secure_aggregation=secure_aggregation,
                              update_norm_bound=update_norm_bound, round_retries=round_retries)
    for site in sites:
        if not (site / "site.toml").is_file():
            raise MissingInput(f"{site} is not a site directory (no site.toml)",
                               f"create it with `fedmpt site init {site} --name NAME --epsilon E`, "
                               "then `fedmpt ingest` it")
    run_in_simulation(config, sites)
    typer.echo(f"run {config.run_name} completed; results in {config.aggregator_dir}")
