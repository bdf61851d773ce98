"""The ``fedmpt`` command line: one entry point for sites, consortium leads and reviewers."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dashboard.cli_users import users_app
from federation.cli_audit import audit_app
from federation.cli_experiment import experiment_app
from federation.cli_deploy import register as _register_deployment
from federation.cli_report import report_app
from federation.flower_env import configure_flower_env
from federation.log_setup import configure_logging

app = typer.Typer(help="FedMPT: federated chest-CT + report foundation model under patient-level DP.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
site_app = typer.Typer(help="Site (hospital) set-up.", no_args_is_help=True)
privacy_app = typer.Typer(help="Privacy budgets: estimate, plan, audit the ledger.", no_args_is_help=True)
app.add_typer(site_app, name="site")
app.add_typer(privacy_app, name="privacy")
_register_deployment(app, site_app)
app.add_typer(audit_app, name="audit")
app.add_typer(experiment_app, name="experiment")
app.add_typer(report_app, name="report")


@app.callback()
def _setup(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    configure_logging(verbose=verbose)
    configure_flower_env(Path(".flwr"))


@app.command()
def synth(
    out: Path = typer.Argument(..., help="Folder to write one site directory per hospital into."),
    sites: int = typer.Option(3, help="Number of hospitals."),
    patients: int = typer.Option(40, help="Patients per hospital."),
    seed: int = typer.Option(0, help="Seed; the same seed gives the same consortium."),
    matrix: int = typer.Option(128, help="In-plane matrix of the generated CT slices."),
) -> None:
    """Generate the synthetic multi-center consortium (DICOM series, reports, records, truth)."""
    from client_site.synthetic import generate_consortium

    for site_dir in generate_consortium(out, n_sites=sites, patients_per_site=patients,
                                        seed=seed, matrix=matrix):
        typer.echo(f"wrote {site_dir}")


@site_app.command("init")
def site_init(
    site_dir: Path = typer.Argument(..., help="The hospital's site directory."),
    name: str = typer.Option(..., help="Site name shown to the consortium."),
    epsilon: float = typer.Option(..., help="The site's cumulative epsilon budget over all runs."),
    delta: float = typer.Option(1e-5, help="The site's fixed delta (well below 1/patients)."),
    accountant: str = typer.Option("rdp", help="Accountant that prices the ledger: rdp or prv."),
) -> None:
    """Write the site's own config (name and privacy budget) to SITE_DIR/site.toml."""
    from client_site.site_config import write_site_config

    try:
        path = write_site_config(site_dir, name=name, epsilon=epsilon, delta=delta,
                                 accountant=accountant)
    except FileExistsError:
        raise typer.BadParameter(f"{site_dir}/site.toml exists; edit it by hand to change the budget")
    typer.echo(f"wrote {path}")


@app.command()
def ingest(
    site_dir: Path = typer.Argument(..., help="The hospital's site directory (dicom/, reports/, ...)."),
    out: Path = typer.Option(None, "--out", help="Cache folder (default: SITE_DIR/cache)."),
    preset: str = typer.Option("demo", help="Model preset whose input grid to ingest to."),
    qa: bool = typer.Option(False, "--qa", help="Also write CACHE/qa.json: shareable data-QA statistics."),
) -> None:
    """Validate, de-identify and cache a site's DICOM series and reports.

    Exits 1 when nothing was accepted (an empty cache). Re-runs reprocess only new or changed files.
    """
    from client_site.ingestion import ingest_site
    from federation.presets import get_preset

    result = ingest_site(site_dir, out or site_dir / "cache", config=get_preset(preset).preprocess, qa=qa)
    typer.echo(json.dumps(result.summary, indent=2))
    typer.echo(f"every file, accepted or rejected with its reason (names files by path): {result.report_path}")
    if result.qa_path is not None:
        typer.echo(f"data-QA statistics (small counts suppressed): {result.qa_path}")
    if result.accepted == 0:
        raise typer.Exit(code=1)


@app.command()
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


@app.command()
def demo(
    workdir: Path = typer.Option(Path("fedmpt-demo"), help="Where the consortium and results go."),
    sites: int = typer.Option(3, help="Hospitals in the synthetic consortium."),
    patients: int = typer.Option(40, help="Patients per hospital."),
    rounds: int = typer.Option(3, help="Federated pretraining rounds."),
    finetune_rounds: int = typer.Option(2, help="Federated fine-tuning rounds that follow."),
    seed: int = typer.Option(0, help="Seed of the consortium and of the run."),
) -> None:
    """End to end on the synthetic consortium: synth, ingest, federated DP pretraining and
    fine-tuning with validation at every site, then drafts at each site."""
    from federation.demo import run_demo

    typer.echo(run_demo(workdir, n_sites=sites, patients=patients, rounds=rounds,
                        finetune_rounds=finetune_rounds, seed=seed))


dashboard_app = typer.Typer(help="The Streamlit dashboard (login required) and its users.",
                            invoke_without_command=True)
app.add_typer(dashboard_app, name="dashboard")
dashboard_app.add_typer(users_app, name="users")


@dashboard_app.callback()
def dashboard(
    ctx: typer.Context,
    workdir: Path = typer.Option(Path("fedmpt-demo"), help="Workdir holding aggregator/results.sqlite."),
    site: Path = typer.Option(None, "--site", help="Site-local case viewer over this SITE_DIR only."),
    port: int = typer.Option(8501, help="Port on the bound address."),
    address: str = typer.Option("127.0.0.1", help="Bind address (loopback unless you mean it)."),
) -> None:
    """Start the dashboard for consortium leads and reviewers (or, with --site, the case viewer)."""
    if ctx.invoked_subcommand is not None:
        return
    from dashboard.launch import launch, launch_site

    if site is not None:
        raise typer.Exit(code=launch_site(site, port=port, address=address))
    raise typer.Exit(code=launch(workdir, port=port, address=address))


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
def privacy_ledger(site_dir: Path = typer.Argument(..., help="The site directory.")) -> None:
    """Print the site's privacy history: every DP segment, epsilon after it, and the budget."""
    from client_site.ledger_view import format_ledger

    typer.echo(format_ledger(site_dir))
