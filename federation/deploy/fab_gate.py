"""A site's gate in front of ``flwr-clientapp``: run an app bundle (FAB) only if approved.

Flower's SuperNode executes whatever FAB the SuperLink sends. FedMPT starts the SuperNode
with ``--isolation process`` (it then launches nothing itself) and its own executor
(:mod:`federation.deploy.site_executor`), which starts this script instead of
``flwr-clientapp`` for each task. The script runs Flower's ClientApp process unchanged,
except that the step that unpacks the FAB first computes the SHA-256 of the FAB bytes and
refuses any hash missing from the site's allowlist. A refused task ends as an error reply
("... is not approved by this site") before a single file of the FAB is written or imported.

This file is run as a script and imports only the standard library and Flower, so that
the ClientApp code that runs afterwards is the approved FAB's, not a copy pre-imported from
the site's own installation.
"""

import argparse
import hashlib
import os
import sys
from pathlib import Path

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


def gate(install, allowlist: Path):  # type: ignore[no-untyped-def]
    """Wrap Flower's ``install_from_fab`` with the allowlist check."""

    def gated_install(fab_file, *args, **kwargs):  # type: ignore[no-untyped-def]
        content = fab_file if isinstance(fab_file, bytes) else Path(fab_file).read_bytes()
        digest = hashlib.sha256(content).hexdigest()
        if digest not in approved_hashes(allowlist):
            raise AppNotApproved(
                f"app bundle {digest} is not approved by this site; review it, then "
                f"`fedmpt site approve {digest}`"
            )
        return install(fab_file, *args, **kwargs)

    return gated_install


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

    from flwr.supercore.tls import validate_and_resolve_root_certificates
    from flwr.supernode.runtime import run_clientapp as runtime

    runtime.install_from_fab = gate(runtime.install_from_fab, args.approved)  # type: ignore[attr-defined]
    runtime.run_clientapp(
        runtime_api_address=args.runtime_api_address,
        token=args.token,
        insecure=args.insecure,
        certificates=validate_and_resolve_root_certificates(args.root_certificates, args.insecure),
        parent_pid=args.parent_pid,
        runtime_dependency_install=False,
    )


if __name__ == "__main__":
    main()
