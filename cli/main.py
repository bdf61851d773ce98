"""The ``fedmpt`` command line: one entry point for sites, consortium leads and reviewers."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.aggregator import aggregator_app
from cli.audit import audit_app
from cli.consortium import consortium_app
from cli.dashboard import dashboard_app
from cli.demo import demo
from cli.experiment import experiment_app
from cli.federate import federate
from cli.ingest import ingest
from cli.privacy import privacy_app
from cli.report import report_app
from cli.rounds import rounds_app
from cli.site import site_app
from cli.synth import synth
from federation.flower_env import configure_flower_env
from federation.log_setup import configure_logging

app = typer.Typer(help="FedMPT: federated chest-CT + report foundation model under patient-level DP.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
for command in (synth, ingest, federate, demo):
    app.command()(command)
for group, name in ((site_app, "site"), (privacy_app, "privacy"), (consortium_app, "consortium"),
                    (aggregator_app, "aggregator"), (rounds_app, "rounds"), (audit_app, "audit"),
                    (experiment_app, "experiment"), (report_app, "report"), (dashboard_app, "dashboard")):
    app.add_typer(group, name=name)


@app.callback()
def _setup(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    configure_logging(verbose=verbose)
    configure_flower_env(Path(".flwr"))
