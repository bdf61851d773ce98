"""Accepted reports: the clinician's signed-off versions, kept at the site.

``SITE_DIR/cache/accepted_reports/<study_key>.json`` holds ``{"study_key", "versions": [...]}``,
every accepted version with who accepted it and when (UTC), oldest first. It is the case viewer's
only write and it never leaves the site.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from dashboard.site_reader import Draft, SiteReadError, check_key
from infra.atomic_files import PRIVATE_MODE, write_json_atomic

__all__ = ["accept_report", "accepted_path", "load_accepted"]


def accepted_path(site_dir: Path, study_key: str) -> Path:
    """``SITE_DIR/cache/accepted_reports/<study_key>.json``."""
    return Path(site_dir) / "cache" / "accepted_reports" / f"{check_key(study_key)}.json"


def load_accepted(site_dir: Path, study_key: str) -> list[dict[str, Any]]:
    """The accepted versions of the study's report, oldest first (empty when none)."""
    path = accepted_path(site_dir, study_key)
    if not path.is_file():
        return []
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SiteReadError(f"cannot read {path.name}: {e}") from e
    versions = payload.get("versions") if isinstance(payload, dict) else None
    if not isinstance(versions, list):
        raise SiteReadError(f"{path.name} has no 'versions' list")
    return [v for v in versions if isinstance(v, dict)]


def accept_report(site_dir: Path, study_key: str, draft: Draft, *, user: str,
                  now: float | None = None) -> dict[str, Any]:
    """Append the clinician's accepted version to ``cache/accepted_reports/<key>.json``.

    The file is rewritten atomically (temporary file, fsync, rename; mode 0600), so a crash
    leaves the previous versions intact. Earlier versions are kept, newest last.

    Parameters
    ----------
    site_dir : Path
        The site directory.
    study_key : str
        The study's pseudonymous key.
    draft : Draft
        The text as accepted (after the clinician's edits).
    user : str
        Who accepted it (the logged-in dashboard user).
    now : float | None
        Time stamp in seconds since the epoch; the current time when None. (default: None)

    Returns
    -------
    dict[str, Any]
        The version written.
    """
    path = accepted_path(site_dir, study_key)
    versions = load_accepted(site_dir, study_key)
    stamp = time.time() if now is None else now
    version = {
        "findings": draft.findings,
        "impression": draft.impression,
        "medications": list(draft.medications),
        "warnings": list(draft.warnings),
        "accepted_by": user,
        "accepted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp)),
    }
    payload = {"study_key": study_key, "versions": [*versions, version]}
    write_json_atomic(path, payload, mode=PRIVATE_MODE)
    return version
