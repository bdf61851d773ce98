"""``fedmpt privacy ...``: estimate and plan epsilon, read a site's ledger."""

from __future__ import annotations

import json
from pathlib import Path

import typer

privacy_app = typer.Typer(help="Privacy budgets: estimate, plan, audit the ledger.", no_args_is_help=True)


@privacy_app.command("estimate")
def privacy_estimate(
    sample_rate: float = typer.Option(..., "--sample-rate", help="Poisson sampling rate q."),
    noise_multiplier: float = typer.Option(..., "--noise-multiplier", help="Noise multiplier sigma."),
    steps: int = typer.Option(..., help="DP-SGD steps."),
    delta: float = typer.Option(1e-5, help="Target delta."),
    accountant: str = typer.Option("rdp", help="rdp or prv (Opacus accountants)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Epsilon of STEPS DP-SGD steps at sampling rate Q and noise S."""
    from privacy.accountant import epsilon_of

    epsilon = epsilon_of([(noise_multiplier, sample_rate, steps)], delta=delta, mechanism=accountant)
    if as_json:
        typer.echo(json.dumps({"epsilon": epsilon, "delta": delta, "accountant": accountant}))
    else:
        typer.echo(f"epsilon = {epsilon:.4f} at delta = {delta:g} ({accountant})")


@privacy_app.command("plan")
def privacy_plan(
    target_epsilon: float = typer.Option(..., "--target-epsilon", help="Epsilon to stay within."),
    delta: float = typer.Option(1e-5, help="Target delta."),
    rounds: int = typer.Option(..., help="Federated rounds."),
    local_steps: int = typer.Option(..., "--local-steps", help="DP-SGD steps per round."),
    sample_rate: float = typer.Option(..., "--sample-rate", help="Poisson sampling rate q."),
    accountant: str = typer.Option("rdp", help="rdp or prv."),
) -> None:
    """Noise multiplier that keeps ROUNDS x LOCAL_STEPS steps within the target epsilon."""
    from privacy.planning import noise_for_target

    sigma, reached = noise_for_target(target_epsilon=target_epsilon, delta=delta,
                                      sample_rate=sample_rate, rounds=rounds,
                                      local_steps=local_steps, mechanism=accountant)
    typer.echo(f"noise multiplier = {sigma:.4f} (epsilon {reached:.4f} at delta {delta:g}, {accountant})")


@privacy_app.command("ledger")
def privacy_ledger(
    site_dir: Path = typer.Argument(..., help="The site directory."),
    adopt: bool = typer.Option(False, "--adopt", help="Anchor a ledger that has no head record yet "
                               "(one written before head records existed), after checking it against a backup."),
) -> None:
    """Print the site's privacy history: every DP segment, epsilon after it, and the budget."""
    from client_site.layout import SiteLayout
    from client_site.ledger_view import format_ledger
    from privacy.errors import LedgerCorruptedError
    from privacy.ledger_file import adopt as adopt_ledger

    try:
        if adopt:
            count = adopt_ledger(SiteLayout(site_dir).ledger_path)
            typer.echo(f"anchored {count} ledger entries")
        typer.echo(format_ledger(site_dir))
    except LedgerCorruptedError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
