"""``fedmpt aggregator start``: the aggregator host's SuperLink and Fleet proxy."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.foreground import serve_until_signal

aggregator_app = typer.Typer(help="The aggregator host: SuperLink + Fleet proxy.", no_args_is_help=True)


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
    serve_until_signal(processes.stop, [processes.superlink, processes.proxy])
