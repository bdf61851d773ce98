"""A site's allowlist of app bundles (FABs) it agreed to run, by SHA-256.

The consortium lead publishes the hash of what it launches (``fedmpt rounds build`` /
``rounds start`` print it); a site reviews that FAB (``flwr build`` of the same sources gives
the same bytes: Flower fixes the zip timestamps) and approves it. The check itself runs in
:mod:`federation.deploy.fab_gate`, before anything of the FAB is unpacked.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from federation.deploy.consortium import APPROVED_FABS

_HASH = re.compile(r"^[0-9a-f]{64}$")


def allowlist_path(bundle: Path) -> Path:
    """The allowlist file of a site bundle."""
    return Path(bundle) / APPROVED_FABS


def approved(bundle: Path) -> set[str]:
    """Hashes the site approved."""
    path = allowlist_path(bundle)
    if not path.exists():
        return set()
    return {line.split("#", 1)[0].strip().lower()
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.split("#", 1)[0].strip()}


def approve(bundle: Path, fab_hash: str, *, note: str = "") -> bool:
    """Add ``fab_hash`` to the allowlist; return False if it was already there."""
    fab_hash = fab_hash.strip().lower()
    if not _HASH.match(fab_hash):
        raise ValueError(f"expected the 64-hex-digit SHA-256 of a FAB, got {fab_hash!r}")
    if fab_hash in approved(bundle):
        return False
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(allowlist_path(bundle), "a", encoding="utf-8") as handle:
        handle.write(f"{fab_hash}  # approved {stamp}{' ' + note if note else ''}\n")
    return True


def withdraw(bundle: Path, fab_hash: str) -> bool:
    """Remove ``fab_hash`` from the allowlist; return False if it was not there."""
    path = allowlist_path(bundle)
    fab_hash = fab_hash.strip().lower()
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    kept = [line for line in lines if line.split("#", 1)[0].strip().lower() != fab_hash]
    if len(kept) == len(lines):
        return False
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return True
