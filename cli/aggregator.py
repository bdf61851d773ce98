"""``fedmpt aggregator start``: the aggregator host's SuperLink, SuperExec and Fleet proxy."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from cli.foreground import serve_until_signal

aggregator_app = typer.Typer(help="The aggregator host: SuperLink + Fleet proxy.", no_args_is_help=True)


@aggregator_app.command("start")
def aggregator_start(
    directory: Path = typer.Argument(..., help="Consortium directory."),
    resume: bool = typer.Option(False, help="Resubmit the last unfinished run from its last good "
                                            "signed checkpoint."),
    superlink_user: str = typer.Option("fedmpt-superlink", help="Unprivileged user the SuperLink "
                                       "runs as (created as a system user when missing)."),
    superlink_python: str = typer.Option(sys.executable, help="Python interpreter the SuperLink "
                                         "runs; its user must be able to execute it."),
    same_user: bool = typer.Option(False, "--same-user", help="Run the SuperLink as this user, "
                                   "able to read the CA and signing keys (development only)."),
) -> None:
    """Run the SuperLink (TLS, node auth, loopback), the ServerApp's SuperExec and the Fleet
    proxy until interrupted. As root, the SuperLink runs as --superlink-user."""
    from federation.deploy.consortium import Consortium
    from federation.deploy.processes import start_aggregator
    from federation.deploy.rounds import resume_last
    from federation.deploy.superlink_user import SuperLinkUserError, service_user

    consortium = Consortium.load(directory)
    user = None
    if same_user:
        typer.echo("warning: --same-user: the SuperLink runs as this user and can read the CA key "
                   f"and the signing key under {consortium.root}", err=True)
    elif os.geteuid() != 0:
        typer.echo(f"error: not running as root, so the SuperLink cannot be started as user "
                   f"{superlink_user!r} (it would be able to read the CA and signing keys). Run as "
                   "root, or pass --same-user on a development machine.", err=True)
        raise typer.Exit(2)
    try:
        if not same_user:
            user = service_user(superlink_user)
        processes = start_aggregator(consortium, superlink_user=user, superlink_python=superlink_python)
    except SuperLinkUserError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"SuperLink on 127.0.0.1:{consortium.superlink_port} (pid {processes.superlink.pid}) "
               f"as {user.name if user else 'this user'}, SuperExec (pid {processes.superexec.pid}), "
               f"Fleet proxy on {consortium.fleet_host}:{consortium.fleet_port} (pid {processes.proxy.pid})")
    if processes.registered:
        typer.echo(f"registered: {', '.join(processes.registered)}")
    if resume:
        launched = resume_last(consortium)
        typer.echo(f"resumed run {launched.run_name} as Flower run {launched.run_id}" if launched
                   else "nothing to resume")
    serve_until_signal(processes.stop, processes.all)
