"""A site's gate in front of ``flwr-clientapp``: run an app bundle (FAB) only if approved.

Flower's SuperNode executes whatever FAB the SuperLink sends. FedMPT starts the SuperNode
with ``--isolation process`` (it then launches nothing itself) and its own executor
(:mod:`federation.deploy.site_executor`), which starts this script instead of
``flwr-clientapp`` for each task. The script runs Flower's ClientApp process unchanged,
except that the step that unpacks the FAB first computes the SHA-256 of the FAB bytes and
refuses any hash missing from the site's allowlist. A refused task ends as an error reply
("... is not approved by this site") before a single file of the FAB is written or imported.

Flower installs a FAB into ``$FLWR_HOME/apps/<publisher>.<name>.<version>.<first 8 hex digits
of its hash>`` and reuses that folder, unchecked, when it exists. So after installing, the gate
compares every file in the folder with the approved FAB's files (SHA-256 each, nothing missing,
nothing extra, no byte code: the gated process writes none) and reinstalls a folder that
differs; a second mismatch refuses the task.

This file is run as a script and imports only the standard library and Flower (the Flower
internals through ``infra/compat.py``, loaded by file path under a private name), so that the
ClientApp code that runs afterwards is the approved FAB's, not a copy pre-imported from the
site's own installation.
"""

import argparse
import fcntl
import hashlib
import importlib.util
import io
import os
import shutil
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # run as a script: do not make this package's modules importable top-level


class AppNotApproved(RuntimeError):
    """The FAB's hash is not in the site's allowlist."""


def approved_hashes(path: Path) -> set[str]:
    """Hashes listed in the allowlist file (``#`` starts a comment); empty if missing."""
    if not path.exists():
        return set()
    hashes = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        token = line.split("#", 1)[0].strip().lower()
        if token:
            hashes.add(token)
    return hashes


def gate(install: Callable[..., Path], allowlist: Path) -> Callable[..., Path]:
    """Wrap Flower's ``install_from_fab`` with the allowlist check and the installed-files check."""

    def gated_install(fab_file: bytes | Path, *args: Any, **kwargs: Any) -> Path:
        content = fab_file if isinstance(fab_file, bytes) else Path(fab_file).read_bytes()
        digest = hashlib.sha256(content).hexdigest()
        if digest not in approved_hashes(allowlist):
            raise AppNotApproved(
                f"app bundle {digest} is not approved by this site; review it, then "
                f"`fedmpt site approve {digest}`"
            )
        expected = bundle_files(content)
        with open(allowlist.with_name(allowlist.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one install or check of this site's apps at a time
            path = Path(install(fab_file, *args, **kwargs))
            if installed_files(path) == expected:
                return path
            print(f"fab-gate: the installed copy of app {digest[:12]} at {path} differs from the "
                  f"approved bundle; reinstalling it", file=sys.stderr)
            shutil.rmtree(path)
            path = Path(install(fab_file, *args, **kwargs))
            if installed_files(path) != expected:
                raise AppNotApproved(f"the installed copy of app {digest} at {path} does not match "
                                     f"the approved bundle")
            return path

    return gated_install


def bundle_files(fab: bytes) -> dict[str, str]:
    """SHA-256 of each file a FAB installs (Flower drops its ``.info/`` manifest)."""
    with zipfile.ZipFile(io.BytesIO(fab)) as archive:
        return {name: hashlib.sha256(archive.read(name)).hexdigest() for name in archive.namelist()
                if not name.endswith("/") and not name.startswith(".info/")}


def installed_files(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (relative POSIX names), byte code included."""
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file() or path.is_symlink()}


def _load_compat() -> ModuleType:
    """:mod:`infra.compat` loaded by file path under a private name (see the module docstring)."""
    path = Path(__file__).resolve().parents[2] / "infra" / "compat.py"
    spec = importlib.util.spec_from_file_location("_fab_gate_compat", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    """Parse ``flwr-clientapp``'s arguments plus ``--approved FILE`` and run the gated task."""
    parser = argparse.ArgumentParser(description="flwr-clientapp behind a FAB allowlist")
    parser.add_argument("--runtime-api-address", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--approved", required=True, type=Path, help="Allowlist file.")
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--root-certificates", default=None)
    parser.add_argument("--insecure", action="store_true")
    args = parser.parse_args()

    # No byte code next to the app's sources: the installed folder holds exactly the approved files.
    sys.dont_write_bytecode = True
    _load_compat().run_gated_clientapp(
        lambda install: gate(install, args.approved), runtime_api_address=args.runtime_api_address,
        token=args.token, root_certificates=args.root_certificates, insecure=args.insecure,
        parent_pid=args.parent_pid,
    )


if __name__ == "__main__":
    main()
