"""The login gate of both dashboards: a form, the session's user, a logout button.

The logged-in user lives in ``st.session_state`` (kept on the server, per browser session);
failed logins are counted per user name in the users file, with a lockout
(:meth:`dashboard.users.UserStore.authenticate`).
On every script run the user is looked up again in the users file, so removing a user or
changing their role takes effect at their next interaction; a session also expires after
``SESSION_TTL_S``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import streamlit as st

from dashboard.users import User, UsersFileError, UserStore

__all__ = ["SESSION_TTL_S", "Login", "logout_button", "require_login"]

logger = logging.getLogger(__name__)

#: A login is valid for this long (seconds), then the user logs in again.
SESSION_TTL_S = 12 * 3600
_STATE_KEY = "fedmpt_login"


@dataclass(frozen=True)
class Login:
    """The session's login: who, and when (``time.time()``)."""

    name: str
    at: float


def _forget() -> None:
    """Log out: drop everything this browser session holds (snapshot, selections)."""
    st.session_state.clear()


def current_user(store: UserStore) -> User | None:
    """The logged-in user, re-read from ``store``; None when nobody (or no longer) logged in."""
    login = st.session_state.get(_STATE_KEY)
    if not isinstance(login, Login):
        return None
    if time.time() - login.at > SESSION_TTL_S:
        _forget()
        return None
    user = store.get(login.name)
    if user is None:
        _forget()
    return user


def _form(store: UserStore, title: str) -> None:
    st.title(title)
    with st.form("login", enter_to_submit=True):
        name = st.text_input("User name", key="login_name", autocomplete="username")
        password = st.text_input("Password", type="password", key="login_password",
                                 autocomplete="current-password")
        submitted = st.form_submit_button("Log in", type="primary", key="login_submit")
    if not submitted:
        return
    # Failed logins are counted per user name in the users file, not in this browser session
    # (a new session would reset it): see UserStore.authenticate.
    user = store.authenticate(name.strip(), password)
    if user is None:
        logger.warning("dashboard login failed for %r", name)
        st.error("Unknown user name or wrong password.")  # also when locked: no hint which names exist
        return
    st.session_state[_STATE_KEY] = Login(name=user.name, at=time.time())
    logger.info("dashboard login: %s (%s)", user.name, user.role)
    st.rerun()


def require_login(store: UserStore, *, title: str, add_user_command: str) -> User:
    """Return the logged-in user, or draw the login form and stop the script.

    Parameters
    ----------
    store : UserStore
        The users file of this dashboard.
    title : str
        Heading above the login form.
    add_user_command : str
        The command that creates the first user, shown when the users file is missing.

    Returns
    -------
    User
        The logged-in user (the script stops before returning otherwise).
    """
    try:
        if not store.exists():
            st.title(title)
            st.info(
                "Nobody can log in yet: this dashboard has no users. Create the first one "
                "(the password is asked for, never passed on the command line):"
            )
            st.code(add_user_command, language="bash")
            st.stop()
        user = current_user(store)
    except UsersFileError as e:
        st.error(f"Cannot read the dashboard's users: {e}")
        st.stop()
    if user is None:
        _form(store, title)
        st.stop()
    return user


def logout_button(user: User) -> None:
    """Who is logged in, and a button that logs out (draw it in the sidebar)."""
    where = f", site {user.site}" if user.site else ""
    st.caption(f"Logged in as **{user.name}** ({user.role}{where})")
    if st.button("Log out", key="logout", icon=":material/logout:"):
        _forget()
        st.rerun()
