"""``fedmpt federate``: federated DP rounds over local site directories (Flower simulation)."""

from __future__ import annotations

from pathlib import Path

import typer


def federate(
    sites: list[Path] = typer.Argument(..., help="Site directories, one simulated SuperNode each."),
    workdir: Path = typer.Option(Path("fedmpt-demo"), help="Aggregator state goes to WORKDIR/aggregator."),
    rounds: int = typer.Option(3, help="Federated rounds."),
    strategy: str = typer.Option("fedavg", help="fedavg, fedprox or fedadam."),
    proximal_mu: float = typer.Option(0.01, help="FedProx weight mu of the sites' proximal term."),
    local_steps: int = typer.Option(10, help="DP-SGD steps per site per round."),
    expected_batch_size: int = typer.Option(8, help="Expected Poisson batch (patients)."),
    noise_multiplier: float = typer.Option(1.5, help="DP noise multiplier sigma."),
    preset: str = typer.Option("demo", help="Model preset."),
    run_name: str = typer.Option("", help="Run key in the results store (default: time-stamped)."),
    resume: bool = typer.Option(False, help="Continue RUN_NAME from its last good signed checkpoint."),
    aggregation: str = typer.Option("mean", help="mean, or with fedavg: median or trimmed-mean."),
    norm_factor: float = typer.Option(10.0, help="Reject updates > this x the other sites' median norm (0: off)."),
    seed: int = typer.Option(0, help="Seed of the initial model and the sites' sampling and noise."),
    task: str = typer.Option("pretrain", help="pretrain (SSL) or finetune (diagnosis, medication, reports)."),
    init_checkpoint: Path = typer.Option(
        None, "--init-checkpoint",
        help="Round checkpoint or state dict initialising the global model (finetune: the backbone)."),
    secure_aggregation: bool = typer.Option(
        False, "--secure-aggregation",
        help="SecAgg+: the aggregator sees only the sum of updates (>= 3 sites, fedavg, mean)."),
    update_norm_bound: float = typer.Option(
        10.0, help="With --secure-aggregation: L2 bound each site clips its update to."),
) -> None:
    """Run federated DP rounds over local site directories on Flower's simulation engine."""
    from federation.config import FederationConfig
    from federation.simulation import run_in_simulation

    config = FederationConfig(workdir=str(workdir), num_rounds=rounds, strategy=strategy,
                              proximal_mu=proximal_mu,
                              local_steps=local_steps, noise_multiplier=noise_multiplier,
                              expected_batch_size=expected_batch_size,
                              model_preset=preset, run_name=run_name,
                              min_sites=len(sites) if secure_aggregation else min(2, len(sites)),
                              resume=resume,
                              aggregation=aggregation, norm_factor=norm_factor, seed=seed,
                              task=task, init_checkpoint=str(init_checkpoint or ""),
                              secure_aggregation=secure_aggregation,
                              update_norm_bound=update_norm_bound)
    run_in_simulation(config, sites)
    typer.echo(f"run {config.run_name} completed; results in {config.aggregator_dir}")
