"""Where the dashboard finds the consortium's workdir and the results store inside it."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["STORE_RELATIVE_PATH", "WORKDIR_ENV", "demo_commands", "resolve_workdir", "store_path"]

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


def resolve_workdir(argv: Sequence[str], environ: Mapping[str, str]) -> Path | None:
    """Find the workdir from the script's arguments, else from ``FEDMPT_WORKDIR``.

    Parameters
    ----------
    argv : Sequence[str]
        Arguments after the script name (``streamlit run dashboard/app.py -- --workdir DIR``
        gives ``["--workdir", "DIR"]``). Unknown arguments are ignored.
    environ : Mapping[str, str]
        Environment; ``FEDMPT_WORKDIR`` is used when ``--workdir`` is absent.

    Returns
    -------
    Path | None
        The workdir, or None when neither names one.
    """
    # allow_abbrev=False: an unrelated "--w..." flag must not be taken for --workdir.
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--workdir", type=Path, default=None)
    args, _unknown = parser.parse_known_args(list(argv))
    if args.workdir is not None:
        return Path(args.workdir)
    value = environ.get(WORKDIR_ENV, "").strip()
    return Path(value) if value else None


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
