"""``fedmpt consortium|aggregator|rounds ...`` and ``fedmpt site start|approve``: real federation.

Registered on the main ``fedmpt`` app by :func:`register`. Heavy imports happen inside the
commands, so ``fedmpt --help`` stays fast.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import typer

consortium_app = typer.Typer(help="Consortium PKI: CA, SuperLink TLS, aggregator key, site bundles.",
                             no_args_is_help=True)
aggregator_app = typer.Typer(help="The aggregator host: SuperLink + Fleet proxy.", no_args_is_help=True)
rounds_app = typer.Typer(help="Launch and follow federated runs (consortium lead, aggregator host).",
                         no_args_is_help=True)


# -- consortium -------------------------------------------------------------------------------
@consortium_app.command("init")
def consortium_init(
    directory: Path = typer.Argument(..., help="Consortium directory to create."),
    name: str = typer.Option("fedmpt", help="Consortium name (certificate organisation)."),
    superlink_port: int = typer.Option(19300, help="SuperLink port, bound to 127.0.0.1."),
    fleet_host: str = typer.Option("127.0.0.1", help="Address the Fleet proxy binds (0.0.0.0: all)."),
    fleet_port: int = typer.Option(19443, help="Port of the Fleet proxy: the only one sites reach."),
    advertise: str = typer.Option("", help="HOST:PORT sites dial (default FLEET_HOST:FLEET_PORT)."),
    san: list[str] = typer.Option([], help="Extra DNS name or IP for the TLS certificate (repeat)."),
) -> None:
    """Create the consortium CA, SuperLink certificate, aggregator signing key and config."""
    from federation.deploy.consortium import init_consortium

    consortium = init_consortium(directory, name=name, superlink_port=superlink_port,
                                 fleet_host=fleet_host, fleet_port=fleet_port, advertise=advertise,
                                 extra_names=tuple(san))
    typer.echo(f"consortium {consortium.name} in {consortium.root}; sites dial {consortium.advertised}")


@consortium_app.command("add-site")
def consortium_add_site(
    directory: Path = typer.Argument(..., help="Consortium directory."),
    name: str = typer.Argument(..., help="Site name (lower-case, digits, - or _)."),
    public_key: Path = typer.Option(None, help="Register the site's own OpenSSH EC public key "
                                               "instead of generating a key pair here."),
) -> None:
    """Create a site bundle and register its node key with the SuperLink."""
    from federation.deploy.consortium import Consortium, add_site

    consortium = Consortium.load(directory)
    bundle = add_site(consortium, name, public_key=public_key)
    node_id = consortium.registry()[name]["node_id"]
    typer.echo(f"bundle {bundle} (hand it to the site over a trusted channel, then delete the "
               f"private node_key here)")
    typer.echo(f"node id {node_id}" if node_id is not None else
               "not registered yet: the SuperLink is not running; `fedmpt aggregator start` will do it")


@consortium_app.command("revoke-site")
def consortium_revoke_site(
    directory: Path = typer.Argument(..., help="Consortium directory."),
    name: str = typer.Argument(..., help="Site to revoke."),
) -> None:
    """Unregister the site's node (disconnecting it) and mark it revoked."""
    from federation.deploy.consortium import Consortium, revoke_site

    entry = revoke_site(Consortium.load(directory), name)
    typer.echo(f"revoked {name} (node {entry.get('node_id')})")


# -- aggregator -------------------------------------------------------------------------------
def _serve_until_signal(stop: object, processes: list[object]) -> None:
    stopping = {"now": False}

    def _handler(signum: int, frame: object) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    try:
        while not stopping["now"] and all(p.alive() for p in processes):  # type: ignore[attr-defined]
            time.sleep(1)
    finally:
        stop()  # type: ignore[operator]
    dead = [p for p in processes if p.popen.returncode not in (None, 0, -15)]  # type: ignore[attr-defined]
    if not stopping["now"]:
        for process in dead or processes:
            typer.echo(f"{process.name} exited ({process.popen.returncode}); see {process.log_path}",  # type: ignore[attr-defined]
                       err=True)
        raise typer.Exit(code=1)


@aggregator_app.command("start")
def aggregator_start(
    directory: Path = typer.Argument(..., help="Consortium directory."),
    resume: bool = typer.Option(False, help="Resubmit the last unfinished run from its last good "
                                            "signed checkpoint."),
) -> None:
    """Run the SuperLink (TLS, node auth, loopback) and the Fleet proxy until interrupted."""
    from federation.deploy.consortium import Consortium
    from federation.deploy.processes import start_aggregator
    from federation.deploy.rounds import resume_last

    consortium = Consortium.load(directory)
    processes = start_aggregator(consortium)
    typer.echo(f"SuperLink on 127.0.0.1:{consortium.superlink_port} (pid {processes.superlink.pid}), "
               f"Fleet proxy on {consortium.fleet_host}:{consortium.fleet_port} (pid {processes.proxy.pid})")
    if processes.registered:
        typer.echo(f"registered: {', '.join(processes.registered)}")
    if resume:
        launched = resume_last(consortium)
        typer.echo(f"resumed run {launched.run_name} as Flower run {launched.run_id}" if launched
                   else "nothing to resume")
    _serve_until_signal(processes.stop, [processes.superlink, processes.proxy])


# -- site -------------------------------------------------------------------------------------
def site_start(
    bundle: Path = typer.Argument(..., help="The site bundle from `fedmpt consortium add-site`."),
    data: Path = typer.Option(..., "--data", help="The site directory (site.toml, cache/)."),
    runtime_port: int = typer.Option(9094, help="Loopback port of the SuperNode's runtime API."),
    superlink: str = typer.Option("", help="Override the bundle's Fleet address (HOST:PORT)."),
) -> None:
    """Run this hospital's SuperNode; it executes only app bundles the site approved."""
    from federation.deploy.processes import start_site

    processes = start_site(bundle, data, runtime_port=runtime_port, superlink=superlink or None)
    typer.echo(f"SuperNode pid {processes.supernode.pid}, gated executor pid {processes.executor.pid}; "
               f"logs in {processes.supernode.log_path.parent}")
    _serve_until_signal(processes.stop, [processes.supernode, processes.executor])


def site_approve(
    fab_hash: str = typer.Argument(..., help="SHA-256 of the app bundle (FAB) to allow."),
    bundle: Path = typer.Option(Path("."), help="The site bundle holding approved_fabs.txt."),
    note: str = typer.Option("", help="Free text kept next to the hash (e.g. who reviewed it)."),
    withdraw: bool = typer.Option(False, help="Remove the hash instead."),
) -> None:
    """Allow (or withdraw) an app bundle on this site."""
    from federation.deploy import approval

    if withdraw:
        changed = approval.withdraw(bundle, fab_hash)
        typer.echo("withdrawn" if changed else "was not approved")
        return
    changed = approval.approve(bundle, fab_hash, note=note)
    typer.echo("approved" if changed else "already approved")


# -- rounds -----------------------------------------------------------------------------------
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


def register(app: typer.Typer, site_app: typer.Typer) -> None:
    """Add the deployment commands to the main ``fedmpt`` app and its ``site`` sub-app."""
    app.add_typer(consortium_app, name="consortium")
    app.add_typer(aggregator_app, name="aggregator")
    app.add_typer(rounds_app, name="rounds")
    site_app.command("start")(site_start)
    site_app.command("approve")(site_approve)
