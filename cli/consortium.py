"""``fedmpt consortium ...``: the consortium PKI (CA, SuperLink TLS, aggregator key, site bundles)."""

from __future__ import annotations

from pathlib import Path

import typer

consortium_app = typer.Typer(help="Consortium PKI: CA, SuperLink TLS, aggregator key, site bundles.",
                             no_args_is_help=True)


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
    patients: int = typer.Option(None, help="The site's number of training patients, as agreed with "
                                            "it: the most its update can weigh in the aggregate."),
) -> None:
    """Create a site bundle and register its node key with the SuperLink."""
    from federation.deploy.consortium import Consortium, add_site

    consortium = Consortium.load(directory)
    bundle = add_site(consortium, name, public_key=public_key, patients=patients)
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
