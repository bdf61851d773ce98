"""FedMPT site-local case viewer, for a hospital's clinicians (``fedmpt dashboard --site SITE_DIR``).

Run with ``streamlit run dashboard/site_app.py -- --site SITE_DIR`` (or ``FEDMPT_SITE_DIR``).
It reads that one site directory only (users in ``SITE_DIR/secrets/dashboard_users.json``),
writes only accepted reports into ``SITE_DIR/cache/accepted_reports/`` and sends nothing
anywhere. Leads and the site's own users may log in; reviewers may not.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import streamlit as st

if importlib.util.find_spec("dashboard") is None:  # pragma: no cover - depends on the install
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard.auth import logout_button, require_login  # noqa: E402
from dashboard.site_reader import site_name  # noqa: E402
from dashboard.users import Role, User, UserStore, site_users_path  # noqa: E402
from dashboard.views._guard import run_guarded  # noqa: E402
from dashboard.views._site import SiteContext, publish_site  # noqa: E402
from dashboard.workdir import resolve_folder  # noqa: E402

#: Environment variable naming the site directory when no ``--site`` argument is given.
SITE_DIR_ENV = "FEDMPT_SITE_DIR"


def resolve_site_dir(argv: Sequence[str], environ: Mapping[str, str]) -> Path | None:
    """The site directory from ``--site DIR``, else from ``FEDMPT_SITE_DIR``; None if neither."""
    return resolve_folder(argv, environ, flag="--site", env=SITE_DIR_ENV)


def refusal(user: User, name: str) -> str | None:
    """Why ``user`` may not open this site's case viewer; None when they may."""
    if user.role is Role.REVIEWER:
        return ("Reviewers see the consortium pages only. The case viewer shows patients' "
                "images and reports and is for this site's clinicians.")
    if user.role is Role.SITE and user.site != name:
        return f"Your account belongs to site `{user.site}`; this is site `{name}`."
    return None


def main() -> None:
    """Log in, check the role, then run the case viewer."""
    st.set_page_config(page_title="FedMPT case viewer", page_icon=":material/radiology:", layout="wide")
    site_dir = resolve_site_dir(sys.argv[1:], os.environ)
    if site_dir is None or not site_dir.is_dir():
        st.info(
            "No site directory given (or it does not exist). Start the case viewer at the "
            f"hospital with `fedmpt dashboard --site SITE_DIR` or set `{SITE_DIR_ENV}=SITE_DIR`."
        )
        st.stop()
    name = site_name(site_dir)
    user = require_login(
        UserStore(site_users_path(site_dir)),
        title=f"FedMPT case viewer: {name}",
        add_user_command=f"fedmpt dashboard users add --site-dir {site_dir} --name NAME --role site",
    )
    with st.sidebar:
        logout_button(user)
    reason = refusal(user, name)
    if reason is not None:
        st.title(f"FedMPT case viewer: {name}")
        st.error(reason)
        st.stop()
    publish_site(SiteContext(site_dir=site_dir, site_name=name, user=user))
    page = st.navigation(
        [st.Page("views/case_viewer.py", title="Case viewer", icon=":material/radiology:", default=True)],
        position="hidden",
    )
    run_guarded(page)


main()
