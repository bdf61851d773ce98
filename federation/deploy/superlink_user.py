"""The unprivileged system user the SuperLink runs as, and what it may read.

``fedmpt aggregator start`` run as root starts the SuperLink as :data:`DEFAULT_USER` (created
as a system user if missing), with ``--isolation process``: the ServerApp, which signs rounds,
runs in a separate ``flower-superexec`` as the lead. The SuperLink user owns ``DIR/superlink``
(its TLS certificate and key, its database) and nothing else; the CA key and the aggregator's
signing key stay 0600 and owned by the lead. Before the SuperLink starts, a probe process run
as that user checks both: its own files open, the lead's keys do not.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from federation.deploy.consortium import Consortium

DEFAULT_USER = "fedmpt-superlink"

_PROBE = """
import json, sys
result = {}
for path in sys.argv[1:]:
    try:
        open(path, "rb").close()
        result[path] = True
    except OSError:
        result[path] = False
print(json.dumps(result))
"""


class SuperLinkUserError(RuntimeError):
    """The SuperLink cannot run as a separate user as configured."""


@dataclass(frozen=True)
class ServiceUser:
    """A system user a process is started as."""

    name: str
    uid: int
    gid: int


def service_user(name: str = DEFAULT_USER, *, create: bool = True) -> ServiceUser:
    """The user ``name``; created as a system user without login or home when missing."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        if not create:
            raise SuperLinkUserError(f"user {name!r} does not exist") from None
        made = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                               "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                              capture_output=True, text=True, check=False)
        if made.returncode != 0:
            raise SuperLinkUserError(f"could not create user {name!r}: {made.stderr.strip()}") from None
        entry = pwd.getpwnam(name)
    if entry.pw_uid == 0 or entry.pw_uid == os.geteuid():
        raise SuperLinkUserError(f"user {name!r} (uid {entry.pw_uid}) is not a separate unprivileged "
                                 "user; name another with --superlink-user")
    return ServiceUser(name, entry.pw_uid, entry.pw_gid)


def lead_only_keys(consortium: Consortium) -> list[Path]:
    """The private keys the SuperLink must never read: the CA key and the signing key."""
    return [consortium.ca_key, consortium.signing_key]


def readable_as(user: ServiceUser, paths: list[Path], *, python: str = sys.executable) -> dict[Path, bool]:
    """Which of ``paths`` a process running ``python`` as ``user`` (no extra groups) can open."""
    try:
        probe = subprocess.run([python, "-I", "-c", _PROBE, *map(str, paths)], user=user.uid,
                               group=user.gid, extra_groups=[], capture_output=True, text=True,
                               check=True, cwd="/")
    except (OSError, subprocess.CalledProcessError) as e:
        raise SuperLinkUserError(f"user {user.name!r} cannot run {python} ({e}): install FedMPT "
                                 "where that user can read it, or name an interpreter it can run "
                                 "with --superlink-python") from None
    opened = json.loads(probe.stdout)
    return {path: bool(opened[str(path)]) for path in paths}


def hand_over_superlink_dir(consortium: Consortium, user: ServiceUser, *, python: str) -> None:
    """Give ``user`` the SuperLink's folder, keep the lead's keys 0600, and check both."""
    superlink_dir = consortium.server_key.parent
    for path in [superlink_dir, *superlink_dir.rglob("*")]:
        os.chown(path, user.uid, user.gid, follow_symlinks=False)
    superlink_dir.chmod(0o700)
    for key in lead_only_keys(consortium):
        os.chown(key, os.geteuid(), os.getegid())
        key.chmod(0o600)
    own = [consortium.server_cert, consortium.server_key, consortium.ca_cert]
    opened = readable_as(user, own + lead_only_keys(consortium), python=python)
    unreachable = [str(p) for p in own if not opened[p]]
    if unreachable:
        raise SuperLinkUserError(
            f"user {user.name!r} cannot open {', '.join(unreachable)}: make {consortium.root} and "
            "each folder above it traversable by others (chmod o+x), or move the consortium")
    exposed = [str(p) for p in lead_only_keys(consortium) if opened[p]]
    if exposed:
        raise SuperLinkUserError(f"user {user.name!r} can read {', '.join(exposed)}; "
                                 "refusing to start the SuperLink")


def move_legacy_database(consortium: Consortium) -> None:
    """Move a database from the former ``DIR/aggregator/state.db`` to the SuperLink's folder."""
    legacy = consortium.aggregator_dir / consortium.database.name
    if legacy.exists() and not consortium.database.exists():
        for suffix in ("", "-wal", "-shm", "-journal"):
            old = legacy.with_name(legacy.name + suffix)
            if old.exists():
                shutil.move(old, consortium.database.with_name(consortium.database.name + suffix))
