"""What the site-local entrypoint hands to the case viewer: the site directory and the user."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from dashboard.users import User

__all__ = ["SiteContext", "current_site", "publish_site"]

_KEY = "fedmpt_site_context"


@dataclass(frozen=True)
class SiteContext:
    """The one site directory this dashboard reads, its name and the logged-in user."""

    site_dir: Path
    site_name: str
    user: User


def publish_site(context: SiteContext) -> None:
    """Hand ``context`` to the page that runs next."""
    st.session_state[_KEY] = context


def current_site() -> SiteContext:
    """The context the entrypoint published; stops the page when there is none."""
    context = st.session_state.get(_KEY)
    if not isinstance(context, SiteContext):
        st.info("Start the case viewer with `fedmpt dashboard --site SITE_DIR`.")
        st.stop()
    return context
