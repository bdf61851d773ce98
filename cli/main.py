"""The ``fedmpt`` command line: one entry point for sites, consortium leads and reviewers."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import click
import typer
from typer.core import TyperGroup

from cli.aggregator import aggregator_app
from cli.audit import audit_app
from cli.consortium import consortium_app
from cli.dashboard import dashboard_app
from cli.demo import demo
from cli.errors import EXIT_BUG, as_cli_error
from cli.evaluate import evaluate
from cli.experiment import experiment_app
from cli.federate import federate
from cli.ingest import ingest
from cli.privacy import privacy_app
from cli.report import report_app
from cli.rounds import rounds_app
from cli.site import site_app
from cli.sites import sites
from cli.synth import synth
from federation.flower_env import configure_flower_env
from federation.log_setup import configure_logging

EXIT_CODES = ("Exit codes: 0 done; 1 the run did not do what was asked; 2 usage; 3 missing file or "
              "folder; 4 already exists; 5 invalid value; 6 server unreachable; 7 credentials or "
              "access refused; 8 privacy budget; 9 too few sites online and approved; 70 a bug.")


class FedmptGroup(TyperGroup):
    """The top-level command group: expected failures become one or two lines and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort, BrokenPipeError):
            raise
        except Exception as error:  # noqa: BLE001  (sorted into expected failures and bugs below)
            known = as_cli_error(error)
            if known is None or ctx.params.get("verbose"):
                traceback.print_exception(error)
            if known is None:
                click.echo(f"fedmpt: unexpected {type(error).__name__}; this is a bug, please "
                           "report it with the traceback above", err=True)
                raise click.exceptions.Exit(EXIT_BUG) from None
            click.echo("\n".join(known.lines()), err=True)
            raise click.exceptions.Exit(known.exit_code) from None


app = typer.Typer(help="FedMPT: federated chest-CT + report foundation model under patient-level DP.",
                  epilog=EXIT_CODES, cls=FedmptGroup, no_args_is_help=True,
                  pretty_exceptions_enable=False)
for command in (synth, ingest, federate, demo, sites, evaluate):
    app.command()(command)
for group, name in ((site_app, "site"), (privacy_app, "privacy"), (consortium_app, "consortium"),
                    (aggregator_app, "aggregator"), (rounds_app, "rounds"), (audit_app, "audit"),
                    (experiment_app, "experiment"), (report_app, "report"), (dashboard_app, "dashboard")):
    app.add_typer(group, name=name)


@app.callback()
def _setup(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    configure_logging(verbose=verbose)
    configure_flower_env(Path(".flwr"))
