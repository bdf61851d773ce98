"""``fedmpt rounds ...``: build the app bundle, launch federated runs, follow, read and abort them."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cli.errors import NotEnoughSites, RunFailed, Unreachable
from cli.run_options import (AGGREGATION, EXPECTED_BATCH_SIZE, LOCAL_STEPS, MIN_SITES,
                             NOISE_MULTIPLIER, NORM_FACTOR, PRESET, PROXIMAL_MU, ROUND_RETRIES,
                             ROUND_TIMEOUT, ROUNDS, RUN_NAME, SEED, STRATEGY, TASK)

rounds_app = typer.Typer(help="Launch and follow federated runs (consortium lead, aggregator host).",
                         no_args_is_help=True)

_DIRECTORY = typer.Argument(..., help="Consortium directory.")
_RUN = typer.Option("", "--run", "--run-name", help="Run (default: the last one launched).")


def running_consortium(directory: Path):  # noqa: ANN202  (Consortium, imported lazily)
    from federation.deploy.consortium import Consortium, superlink_up

    consortium = Consortium.load(directory)
    if not superlink_up(consortium):
        raise Unreachable(f"the SuperLink of {consortium.root} does not answer on "
                          f"{consortium.superlink_address}",
                          f"start it on this host: fedmpt aggregator start {directory}")
    return consortium


@rounds_app.command("build")
def rounds_build() -> None:
    """Print the SHA-256 of the app bundle `rounds start` would launch (for sites to approve)."""
    from federation.deploy.rounds import build_fab

    fab, fab_hash = build_fab()
    typer.echo(f"{fab_hash}  ({len(fab)} bytes)")


@rounds_app.command("start")
def rounds_start(
    directory: Path = _DIRECTORY,
    rounds: int = ROUNDS,
    strategy: str = STRATEGY,
    proximal_mu: float = PROXIMAL_MU,
    aggregation: str = AGGREGATION,
    min_sites: int = MIN_SITES,
    round_retries: int = ROUND_RETRIES,
    round_timeout: float = ROUND_TIMEOUT,
    local_steps: int = LOCAL_STEPS,
    expected_batch_size: int = EXPECTED_BATCH_SIZE,
    noise_multiplier: float = NOISE_MULTIPLIER,
    norm_factor: float = NORM_FACTOR,
    preset: str = PRESET,
    seed: int = SEED,
    task: str = TASK,
    run_name: str = RUN_NAME,
    wait: bool = typer.Option(True, help="Wait for the run to finish; exit 1 unless it completed."),
    force: bool = typer.Option(False, help="Submit even when fewer than --min-sites sites are "
                                           "online and have not refused this app bundle."),
) -> None:
    """Check who is there, submit a run to the SuperLink, and (by default) wait for its outcome."""
    from federation.deploy.rounds import build_fab, launch, run_config_for, wait_for
    from federation.deploy.sites import missing_sites, site_states
    from federation.deploy.status import run_report

    consortium = running_consortium(directory)
    config = run_config_for(consortium, num_rounds=rounds, strategy=strategy,
                            proximal_mu=proximal_mu, aggregation=aggregation, min_sites=min_sites,
                            round_retries=round_retries, round_timeout_s=round_timeout,
                            local_steps=local_steps, expected_batch_size=expected_batch_size,
                            noise_multiplier=noise_multiplier, norm_factor=norm_factor,
                            model_preset=preset, seed=seed, task=task, run_name=run_name)
    states = site_states(consortium)
    missing = missing_sites(states, build_fab()[1])
    for name, reason in missing.items():
        typer.echo(f"site {name}: {reason}", err=True)
    ready = len(states) - len(missing)
    if ready < min_sites and not force:
        raise NotEnoughSites(f"{ready} site(s) online and not refusing this app bundle, "
                             f"--min-sites is {min_sites} (missing: {', '.join(missing) or 'none registered'})",
                             "bring the sites up (reasons above), lower --min-sites, or pass --force")
    launched = launch(consortium, config)
    typer.echo(f"run {launched.run_name}: Flower run {launched.run_id}, app bundle {launched.fab_hash}")
    if not wait:
        return
    wait_for(consortium, launched.run_id, timeout=rounds * round_timeout * (round_retries + 1) * 2 + 600,
             poll_s=30.0, run_name=launched.run_name)
    report = run_report(consortium, launched.run_name)
    typer.echo(report["text"])
    if not report["state"].startswith("completed"):
        raise RunFailed(f"run {launched.run_name} did not complete: {report['state']}",
                        f"see each site's reason above; details: fedmpt rounds results {directory} "
                        f"--run {launched.run_name}")


@rounds_app.command("status")
def rounds_status(
    directory: Path = _DIRECTORY,
    run_name: str = _RUN,
    sites: bool = typer.Option(False, "--sites", help="Also list who is connected (fedmpt sites)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The run's state and, per round, every registered site's train and evaluate outcome."""
    from federation.deploy.consortium import Consortium
    from federation.deploy.status import run_report

    consortium = Consortium.load(directory)
    report = run_report(consortium, run_name or None)
    typer.echo(json.dumps(report, indent=1, default=str) if as_json else report["text"])
    if sites:
        from federation.deploy.sites import format_sites, site_states

        typer.echo(format_sites(site_states(running_consortium(directory)), report["run"]["fab_hash"]))


@rounds_app.command("results")
def rounds_results(
    directory: Path = typer.Argument(..., help="Consortium directory or workdir (holds aggregator/)."),
    run_name: str = typer.Option("", "--run", help="Run (default: the newest in the results store)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Per-site participation, epsilon and last metrics of a run."""
    from federation.deploy.status import results_report

    report = results_report(directory, run_name or None)
    typer.echo(json.dumps(report, indent=1, default=str) if as_json else report["text"])


@rounds_app.command("abort")
def rounds_abort(
    directory: Path = _DIRECTORY,
    run_name: str = typer.Option(..., "--run", help="The run to stop."),
) -> None:
    """Stop a run on the SuperLink and record it as failed ("aborted") in the results store."""
    from federation.deploy.rounds import abort

    consortium = running_consortium(directory)
    typer.echo(abort(consortium, run_name))
