"""Throwaway dashboard accounts for ``python -m dashboard.screenshots``, gone when it ends.

The screenshots have to log in to both dashboards, which find their users at a fixed place
inside the folder they serve (:func:`~dashboard.users.consortium_users_path`,
:func:`~dashboard.users.site_users_path`). Serving a copy of the folders instead would put a
temporary path into every screenshot (sidebar, hints, captions), so the accounts go into the
real users files for the length of the run: added with :meth:`~dashboard.users.UserStore.add`,
which refuses to overwrite a user of the same name, with a random password that is never
shown, and removed with :meth:`~dashboard.users.UserStore.remove` on the way out (also after an
error or Ctrl-C), which leaves every other user as it was. A users file that did not exist
before is deleted again. Only a killed process (SIGKILL) can leave an account behind; nobody
knows its password, and ``fedmpt dashboard users remove`` removes it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from dashboard.site_reader import site_name
from dashboard.users import Role, UserStore, consortium_users_path, site_users_path

__all__ = ["CLINICIAN_NAME", "LEAD_NAME", "throwaway_accounts"]

#: Login names of the throwaway accounts (drawn in the sidebar of the screenshots).
LEAD_NAME = "screenshots-lead"
CLINICIAN_NAME = "screenshots-clinician"


@contextmanager
def _account(path: Path, name: str, role: Role, site: str | None = None) -> Iterator[tuple[str, str]]:
    store = UserStore(path)
    created = not store.exists()
    password = secrets.token_urlsafe(24)
    store.add(name, role, password, site=site)
    try:
        yield name, password
    finally:
        store.remove(name)
        if created and not store.users():
            path.unlink(missing_ok=True)


@contextmanager
def throwaway_accounts(workdir: Path, site_dir: Path) -> Iterator[tuple[tuple[str, str], tuple[str, str]]]:
    """A lead of ``workdir``'s dashboard and a clinician of ``site_dir``, for one ``with`` block.

    Parameters
    ----------
    workdir : Path
        The consortium's workdir (users in ``WORKDIR/aggregator/dashboard_users.json``).
    site_dir : Path
        A hospital's site directory (users in ``SITE_DIR/secrets/dashboard_users.json``); the
        clinician is a ``site`` user bound to its site name.

    Yields
    ------
    tuple[tuple[str, str], tuple[str, str]]
        ``(lead, clinician)``, each as ``(name, password)``.

    Raises
    ------
    dashboard.users.UsersFileError
        When a users file is unreadable or already holds a user of either name.
    """
    with ExitStack() as stack:
        lead = stack.enter_context(_account(consortium_users_path(workdir), LEAD_NAME, Role.LEAD))
        clinician = stack.enter_context(
            _account(site_users_path(site_dir), CLINICIAN_NAME, Role.SITE, site=site_name(site_dir))
        )
        yield lead, clinician
