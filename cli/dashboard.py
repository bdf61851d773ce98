"""``fedmpt dashboard``: the Streamlit dashboard (login required) and ``fedmpt dashboard users ...``.

User passwords are read from a hidden prompt (twice) on a terminal, or from the first line of
standard input otherwise, and never from the command line (argv is visible to every local
user through ``ps``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cli.errors import MissingInput

if TYPE_CHECKING:
    from dashboard.users import UserStore


dashboard_app = typer.Typer(help="The Streamlit dashboard (login required) and its users.",
                            invoke_without_command=True)


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

    for folder, option in ((site, "--site"), (workdir, "--workdir")):
        if folder is not None and not folder.is_dir():
            raise MissingInput(f"{option} {folder} does not exist",
                               "pass the folder `make demo` or the consortium wrote (e.g. fedmpt-demo)")
    if site is not None:
        raise typer.Exit(code=launch_site(site, port=port, address=address))
    raise typer.Exit(code=launch(workdir, port=port, address=address))


users_app = typer.Typer(help="Dashboard users: add, list, remove (passwords hashed with argon2id).",
                        no_args_is_help=True)

_WORKDIR = typer.Option(None, "--workdir", help="Consortium workdir: users of `fedmpt dashboard --workdir`.")
_SITE_DIR = typer.Option(None, "--site-dir", help="Site directory: users of `fedmpt dashboard --site`.")


def _store(workdir: Path | None, site_dir: Path | None) -> UserStore:
    from dashboard.users import UserStore, consortium_users_path, site_users_path

    if site_dir is not None and workdir is None:
        if not site_dir.is_dir():
            raise typer.BadParameter(f"site directory {site_dir} does not exist")
        return UserStore(site_users_path(site_dir))
    if workdir is not None and site_dir is None:
        return UserStore(consortium_users_path(workdir))
    raise typer.BadParameter("give exactly one of --workdir DIR or --site-dir SITE_DIR")


def _read_password() -> str:
    if sys.stdin.isatty():
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    line = sys.stdin.readline()
    if not line:
        raise typer.BadParameter("no password: type it at the prompt or pipe it on standard input")
    return line.rstrip("\r\n")


@users_app.command("add")
def add(
    name: str = typer.Option(..., "--name", help="Login name."),
    role: str = typer.Option(..., "--role", help="lead, reviewer or site."),
    site: str = typer.Option(None, "--site", help="Site name a site user is bound to "
                             "(default with --site-dir: the site's own name)."),
    workdir: Path = _WORKDIR,
    site_dir: Path = _SITE_DIR,
    replace: bool = typer.Option(False, "--replace", help="Overwrite an existing user (new password)."),
) -> None:
    """Add a user; the password is asked for (or read from standard input), never an argument."""
    from dashboard.site_reader import site_name
    from dashboard.users import UsersFileError

    store = _store(workdir, site_dir)
    if role == "site" and not site and site_dir is not None:
        site = site_name(site_dir)
    password = _read_password()
    try:
        user = store.add(name, role, password, site=site, replace=replace)
    except UsersFileError as e:
        raise typer.BadParameter(str(e)) from e
    bound = f" bound to site {user.site}" if user.site else ""
    typer.echo(f"{'updated' if replace else 'added'} {user.role} {user.name}{bound} in {store.path}")


@users_app.command("list")
def list_users(workdir: Path = _WORKDIR, site_dir: Path = _SITE_DIR) -> None:
    """List the users (names, roles, sites; never hashes)."""
    from dashboard.users import UsersFileError

    store = _store(workdir, site_dir)
    try:
        users = store.users()
    except UsersFileError as e:
        raise typer.BadParameter(str(e)) from e
    if not users:
        typer.echo(f"no users in {store.path}")
    for user in users:
        typer.echo(f"{user.name}\t{user.role}\t{user.site or ''}".rstrip())


@users_app.command("remove")
def remove(
    name: str = typer.Option(..., "--name", help="Login name."),
    workdir: Path = _WORKDIR,
    site_dir: Path = _SITE_DIR,
) -> None:
    """Remove a user; their open sessions end at their next click."""
    from dashboard.users import UsersFileError

    store = _store(workdir, site_dir)
    try:
        removed = store.remove(name)
    except UsersFileError as e:
        raise typer.BadParameter(str(e)) from e
    if not removed:
        raise typer.BadParameter(f"no user {name!r} in {store.path}")
    typer.echo(f"removed {name} from {store.path}")


dashboard_app.add_typer(users_app, name="users")
