"""``fedmpt rounds ...``: build the app bundle, launch federated runs and follow them."""

from __future__ import annotations

import json
from pathlib import Path

import typer

rounds_app = typer.Typer(help="Launch and follow federated runs (consortium lead, aggregator host).",
                         no_args_is_help=True)


@rounds_app.command("build")
def rounds_build() -> None:
    """Print the SHA-256 of the app bundle `rounds start` would launch (for sites to approve)."""
    from federation.deploy.rounds import build_fab

    fab, fab_hash = build_fab()
    typer.echo(f"{fab_hash}  ({len(fab)} bytes)")


@rounds_app.command("start")
def rounds_start(
    directory: Path = typer.Argument(..., help="Consortium directory."),
    rounds: int = typer.Option(3, help="Federated rounds."),
    strategy: str = typer.Option("fedavg", help="fedavg, fedprox or fedadam."),
    proximal_mu: float = typer.Option(0.01, help="FedProx weight mu of the sites' proximal term."),
    aggregation: str = typer.Option("mean", help="mean, or with fedavg: median or trimmed-mean."),
    min_sites: int = typer.Option(2, help="Sites needed to start a round."),
    round_timeout: float = typer.Option(3600.0, help="Seconds to wait for replies in a round."),
    local_steps: int = typer.Option(10, help="DP-SGD steps per site per round."),
    expected_batch_size: int = typer.Option(8, help="Expected Poisson batch (patients)."),
    noise_multiplier: float = typer.Option(1.5, help="DP noise multiplier sigma."),
    preset: str = typer.Option("demo", help="Model preset."),
    seed: int = typer.Option(0, help="Seed of the model and the sites' sampling."),
    run_name: str = typer.Option("", help="Run key in the results store (default: time-stamped)."),
    wait: bool = typer.Option(True, help="Wait for the run to finish and report its status."),
) -> None:
    """Submit a federated run to the consortium's SuperLink; print the FAB hash sites must approve."""
    from federation.deploy.consortium import Consortium
    from federation.deploy.rounds import launch, run_config_for, wait_for

    consortium = Consortium.load(directory)
    config = run_config_for(consortium, num_rounds=rounds, strategy=strategy,
                            proximal_mu=proximal_mu, aggregation=aggregation,
                            min_sites=min_sites, round_timeout_s=round_timeout,
                            local_steps=local_steps, expected_batch_size=expected_batch_size,
                            noise_multiplier=noise_multiplier, model_preset=preset, seed=seed,
                            run_name=run_name)
    launched = launch(consortium, config)
    typer.echo(f"run {launched.run_name}: Flower run {launched.run_id}, FAB {launched.fab_hash}")
    if not wait:
        return
    row = wait_for(consortium, launched.run_id, timeout=rounds * round_timeout * 2 + 600)
    typer.echo(f"run {launched.run_id}: {row.get('status')} {row.get('status-details', '') or ''}".rstrip())
    if row.get("status") != "finished:completed":
        raise typer.Exit(code=1)


@rounds_app.command("status")
def rounds_status(
    directory: Path = typer.Argument(..., help="Consortium directory."),
    run_name: str = typer.Option("", help="Run (default: the last one launched)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Flower's status of a run and each site's participation per round."""
    from federation.deploy.consortium import Consortium
    from federation.deploy.status import run_report

    report = run_report(Consortium.load(directory), run_name or None)
    typer.echo(json.dumps(report, indent=1, default=str) if as_json else report["text"])
