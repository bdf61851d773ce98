"""Dashboard users: names, roles and argon2id password hashes in one 0600 JSON file.

The consortium dashboard keeps its users in ``WORKDIR/aggregator/dashboard_users.json``; the
site-local case viewer keeps its own in ``SITE_DIR/secrets/dashboard_users.json`` so that it
never reads anything outside the site directory. Passwords are hashed with argon2id
(``argon2-cffi``, RFC 9106 parameters) and never stored or logged in clear.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import secrets
import stat
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from infra.atomic_files import PRIVATE_MODE, write_json_atomic
from infra.file_lock import locked

__all__ = [
    "LOCKOUT_S",
    "MAX_FAILED_LOGINS",
    "MIN_PASSWORD_LENGTH",
    "Role",
    "User",
    "UserStore",
    "UsersFileError",
    "consortium_users_path",
    "ensure_user",
    "site_users_path",
]

logger = logging.getLogger(__name__)

#: Shortest password accepted when a user is added.
MIN_PASSWORD_LENGTH = 8
#: Failed logins in a row that lock a user name, and for how long (seconds).
MAX_FAILED_LOGINS = 5
LOCKOUT_S = 15 * 60

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_FORMAT_VERSION = 1


class Role(StrEnum):
    """What a dashboard user may see."""

    LEAD = "lead"  # every consortium page, and the case viewer of a site that adds them
    REVIEWER = "reviewer"  # the consortium pages, read-only; never the case viewer
    SITE = "site"  # its own site only: its rows of the consortium pages, its case viewer


class UsersFileError(ValueError):
    """The users file or a requested change to it is invalid; the message says how to fix it."""


@dataclass(frozen=True)
class User:
    """A dashboard user as stored (without the password hash).

    Parameters
    ----------
    name : str
        Login name.
    role : Role
        What the user may see.
    site : str | None
        The site a ``site`` user is bound to; None for the other roles.
    """

    name: str
    role: Role
    site: str | None = None


def consortium_users_path(workdir: Path) -> Path:
    """``WORKDIR/aggregator/dashboard_users.json``: users of ``fedmpt dashboard --workdir``."""
    return Path(workdir) / "aggregator" / "dashboard_users.json"


def site_users_path(site_dir: Path) -> Path:
    """``SITE_DIR/secrets/dashboard_users.json``: users of ``fedmpt dashboard --site``."""
    return Path(site_dir) / "secrets" / "dashboard_users.json"


def _hasher() -> Any:
    try:
        from argon2 import PasswordHasher
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ImportError("dashboard logins need argon2-cffi: pip install -e .") from e
    return PasswordHasher()


def _check_user(name: str, role: str, site: str | None) -> tuple[Role, str | None]:
    if not _NAME.match(name):
        raise UsersFileError(
            f"user name must be 1-64 letters, digits or . _ @ - (starting with a letter or digit), got {name!r}"
        )
    try:
        parsed = Role(role)
    except ValueError as e:
        raise UsersFileError(f"role must be one of {', '.join(r.value for r in Role)}, got {role!r}") from e
    if parsed is Role.SITE and not site:
        raise UsersFileError("a site user must be bound to a site: give its site name (--site NAME)")
    if parsed is not Role.SITE and site:
        raise UsersFileError(f"only site users are bound to a site; a {parsed} user sees all sites")
    return parsed, (site if parsed is Role.SITE else None)


class UserStore:
    """The users file: read on every call, written atomically with mode 0600.

    Parameters
    ----------
    path : Path
        The JSON file; it need not exist yet.
    hasher : argon2.PasswordHasher | None
        Hasher for new passwords; argon2-cffi's defaults (RFC 9106 low-memory profile) when
        None. Verification always uses the parameters stored in each hash. (default: None)
    """

    def __init__(self, path: Path, *, hasher: Any | None = None) -> None:
        self.path = Path(path)
        self._hasher = hasher if hasher is not None else _hasher()

    # -- reads ----------------------------------------------------------------------------
    def exists(self) -> bool:
        """Whether the file exists (a dashboard without it has nobody who can log in)."""
        return self.path.is_file()

    def _records(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        try:
            mode = stat.S_IMODE(self.path.stat().st_mode)
            if mode & 0o077:
                logger.warning("%s is readable by others (mode %o); chmod 600 it", self.path, mode)
            payload = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UsersFileError(f"cannot read the dashboard users file {self.path}: {e}") from e
        users = payload.get("users") if isinstance(payload, dict) else None
        if not isinstance(users, dict):
            raise UsersFileError(f"{self.path} is not a dashboard users file (no 'users' object)")
        return users

    def users(self) -> list[User]:
        """All users, sorted by name."""
        out = []
        for name, record in sorted(self._records().items()):
            try:
                role, site = _check_user(name, str(record.get("role")), record.get("site"))
            except UsersFileError:
                logger.warning("ignoring the malformed user %r in %s", name, self.path)
                continue
            out.append(User(name=name, role=role, site=site))
        return out

    def get(self, name: str) -> User | None:
        """The user called ``name``, or None."""
        return next((u for u in self.users() if u.name == name), None)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs, else None (also for an unknown or locked name).

        An unknown name still costs one hash verification, so that the time taken does not
        tell which names exist. :data:`MAX_FAILED_LOGINS` failures in a row lock a user for
        :data:`LOCKOUT_S` seconds, counted in the users file (so across browser sessions,
        dashboard processes and restarts); while locked, even the right password fails, at the
        same cost and with the same answer. A success resets the count.
        """
        from argon2.exceptions import InvalidHashError, VerificationError

        now = time.time()
        with locked(self.path):
            records = self._records()
            record = records.get(name)
            user = self.get(name) if record is not None else None
            stored = str(record.get("password_hash", "")) if record is not None else ""
            locked_out = record is not None and float(record.get("locked_until", 0.0)) > now
            try:
                if user is None or not stored or locked_out:
                    self._hasher.verify(_dummy_hash(), password)  # same cost; always fails below
                    ok = False
                else:
                    ok = bool(self._hasher.verify(stored, password))
            except (VerificationError, InvalidHashError):
                ok = False
            if user is not None and record is not None:
                self._count_attempt(records, name, ok=ok, locked_out=locked_out, now=now)
        return user if ok else None

    def _count_attempt(self, records: dict[str, dict[str, Any]], name: str, *, ok: bool,
                       locked_out: bool, now: float) -> None:
        """Update ``name``'s failed-login count and lock; called with the file lock held."""
        record = records[name]
        if ok:
            if record.pop("failed_logins", 0) or record.pop("locked_until", None) is not None:
                self._save(records)
            return
        if locked_out:
            logger.warning("dashboard login for %r refused: locked until %s", name,
                           time.strftime("%H:%M:%SZ", time.gmtime(float(record["locked_until"]))))
            return
        failures = int(record.get("failed_logins", 0)) + 1
        if failures >= MAX_FAILED_LOGINS:
            record["locked_until"] = now + LOCKOUT_S
            record["failed_logins"] = 0
            logger.warning("dashboard user %r locked for %d s after %d failed logins", name, LOCKOUT_S, failures)
        else:
            record["failed_logins"] = failures
        self._save(records)

    # -- writes ---------------------------------------------------------------------------
    def add(self, name: str, role: str, password: str, *, site: str | None = None,
            replace: bool = False) -> User:
        """Add a user (or, with ``replace``, overwrite one) and save the file.

        Parameters
        ----------
        name : str
            Login name: 1-64 of letters, digits and ``. _ @ -``.
        role : str
            ``lead``, ``reviewer`` or ``site``.
        password : str
            At least ``MIN_PASSWORD_LENGTH`` characters; only its argon2id hash is stored.
        site : str | None
            The site name a ``site`` user is bound to (required for them, refused for the
            others). (default: None)
        replace : bool
            Overwrite an existing user of that name. (default: False)

        Returns
        -------
        User
            The stored user.

        Raises
        ------
        UsersFileError
            Invalid name, role, site or password, or the user exists and ``replace`` is False.
        """
        parsed, bound = _check_user(name, role, site)
        if len(password) < MIN_PASSWORD_LENGTH:
            raise UsersFileError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
        with locked(self.path):
            records = self._records()
            if name in records and not replace:
                raise UsersFileError(f"user {name!r} exists in {self.path}; remove it first")
            records[name] = {  # a new password also lifts a lock
                "role": parsed.value,
                "site": bound,
                "password_hash": self._hasher.hash(password),
                "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            self._save(records)
        return User(name=name, role=parsed, site=bound)

    def remove(self, name: str) -> bool:
        """Remove ``name``; False when there was no such user."""
        with locked(self.path):
            records = self._records()
            if records.pop(name, None) is None:
                return False
            self._save(records)
            return True

    def _save(self, records: dict[str, dict[str, Any]]) -> None:
        write_json_atomic(self.path, {"version": _FORMAT_VERSION, "users": records},
                          mode=PRIVATE_MODE, sort_keys=True)


def ensure_user(workdir: Path, name: str, role: str, password: str, *, site: str | None = None) -> User:
    """Create or update a consortium dashboard user, e.g. the first lead of ``fedmpt demo``.

    Parameters
    ----------
    workdir : Path
        The consortium's workdir; the user goes to ``WORKDIR/aggregator/dashboard_users.json``.
    name, role, password, site
        As for :meth:`UserStore.add`.

    Returns
    -------
    User
        The stored user. An existing user of that name is replaced (new role, site, password).
    """
    return UserStore(consortium_users_path(workdir)).add(name, role, password, site=site, replace=True)


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random secret, verified against for unknown names (see ``authenticate``)."""
    return str(_hasher().hash(secrets.token_hex(16)))
