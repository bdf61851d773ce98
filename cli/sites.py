"""``fedmpt sites``: who is there: each registered site's connection, app bundle and budget."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def sites(
    directory: Path = typer.Argument(..., help="Consortium directory (on the aggregator host)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List registered sites: online/offline (SuperLink heartbeats), app bundle, epsilon spent."""
    from cli.rounds import running_consortium
    from federation.deploy.rounds import build_fab
    from federation.deploy.sites import as_dicts, format_sites, site_states

    states = site_states(running_consortium(directory))
    fab_hash = build_fab()[1]
    typer.echo(json.dumps(as_dicts(states), indent=1) if as_json else
               f"app bundle of this installation: {fab_hash}\n{format_sites(states, fab_hash)}")
