"""Salted pseudonymous keys: the only way a patient, study or series is named outside the raw export."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

SALT_BYTES = 32


def salt_path(site_dir: Path) -> Path:
    """Where the site keeps its secret salt (never shared, never in the cache)."""
    return Path(site_dir) / "secrets" / "salt"


def load_or_create_salt(site_dir: Path) -> bytes:
    """Return the site's salt, creating it (mode 0600) on first use."""
    path = salt_path(site_dir)
    if path.exists():
        salt = path.read_bytes()
        if len(salt) != SALT_BYTES:
            raise ValueError(
                f"{path} holds {len(salt)} bytes, expected {SALT_BYTES}; restore it from backup "
                "(a new salt would give every patient a new key and orphan the cache)."
            )
        return salt
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    salt = secrets.token_bytes(SALT_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(salt)
    return salt


def pseudonymize(kind: str, value: str, salt: bytes) -> str:
    """HMAC-SHA256 key for an identifier of a given kind ("patient", "study", "series")."""
    if not value:
        raise ValueError(f"cannot pseudonymize an empty {kind} identifier")
    digest = hmac.new(salt, f"{kind}:{value}".encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{kind[0]}{digest[:19]}"
