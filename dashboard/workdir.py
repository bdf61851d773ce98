"""Where the dashboard finds the consortium's workdir and the results store inside it."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "STORE_RELATIVE_PATH", "WORKDIR_ENV", "demo_commands", "resolve_folder", "resolve_workdir", "store_path",
]

#: Environment variable that names the workdir when no ``--workdir`` argument is given.
WORKDIR_ENV = "FEDMPT_WORKDIR"

#: The results store, relative to the workdir. The dashboard reads nothing else: ``sites/`` is
#: site-private and never opened here.
STORE_RELATIVE_PATH = Path("aggregator") / "results.sqlite"


def store_path(workdir: Path) -> Path:
    """Path of the results store inside ``workdir``.

    Parameters
    ----------
    workdir : Path
        The consortium's workdir (``WORKDIR/aggregator``, ``WORKDIR/sites/<site>``).

    Returns
    -------
    Path
        ``WORKDIR/aggregator/results.sqlite``.
    """
    return Path(workdir) / STORE_RELATIVE_PATH


def resolve_folder(argv: Sequence[str], environ: Mapping[str, str], *, flag: str, env: str) -> Path | None:
    """A folder named by ``flag`` in the script's arguments, else by the variable ``env``.

    Parameters
    ----------
    argv : Sequence[str]
        Arguments after the script name (``streamlit run dashboard/app.py -- --workdir DIR``
        gives ``["--workdir", "DIR"]``). Unknown arguments are ignored.
    environ : Mapping[str, str]
        Environment; ``env`` is used when ``flag`` is absent.
    flag, env : str
        The option (``--workdir``) and the environment variable (``FEDMPT_WORKDIR``).

    Returns
    -------
    Path | None
        The folder, or None when neither names one.
    """
    # allow_abbrev=False: an unrelated "--w..." flag must not be taken for --workdir.
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument(flag, dest="folder", type=Path, default=None)
    args, _unknown = parser.parse_known_args(list(argv))
    if args.folder is not None:
        return Path(args.folder)
    value = environ.get(env, "").strip()
    return Path(value) if value else None


def resolve_workdir(argv: Sequence[str], environ: Mapping[str, str]) -> Path | None:
    """The workdir from ``--workdir DIR``, else from ``FEDMPT_WORKDIR``; None if neither."""
    return resolve_folder(argv, environ, flag="--workdir", env=WORKDIR_ENV)


def demo_commands(workdir: Path) -> tuple[str, str]:
    """The commands that fill ``workdir`` with a demo run.

    Parameters
    ----------
    workdir : Path
        Workdir the dashboard was pointed at.

    Returns
    -------
    tuple[str, str]
        ``fedmpt demo --workdir DIR`` and its ``make demo WORKDIR=DIR`` equivalent.
    """
    return f"fedmpt demo --workdir {workdir}", f"make demo WORKDIR={workdir}"
