"""What the entrypoint hands to each page: the workdir, the runs and the selected run's rows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard.store_reader import RunData
from dashboard.users import User

__all__ = ["Snapshot", "clear_snapshot", "current_snapshot", "publish_snapshot", "safe_filename"]

_SNAPSHOT_KEY = "fedmpt_snapshot"


@dataclass(frozen=True)
class Snapshot:
    """One consistent read of the results store for the current script run.

    Parameters
    ----------
    workdir : Path
        The consortium's workdir.
    store_path : Path
        The results store inside it.
    runs : list[dict[str, Any]]
        All runs, newest first.
    current_run_id : str
        The newest running run, else the newest run.
    data : RunData
        Rows of the run selected in the sidebar, restricted to what ``user`` may see.
    user : User
        The logged-in user.
    """

    workdir: Path
    store_path: Path
    runs: list[dict[str, Any]]
    current_run_id: str
    data: RunData
    user: User


def publish_snapshot(snapshot: Snapshot) -> None:
    """Hand ``snapshot`` to the page that runs next."""
    st.session_state[_SNAPSHOT_KEY] = snapshot


def clear_snapshot() -> None:
    """Forget the previous snapshot (the store became unreadable)."""
    st.session_state.pop(_SNAPSHOT_KEY, None)


def current_snapshot() -> Snapshot:
    """The snapshot the entrypoint published; stops the page when there is none."""
    snapshot = st.session_state.get(_SNAPSHOT_KEY)
    if not isinstance(snapshot, Snapshot):
        st.info("Start the dashboard with `fedmpt dashboard --workdir DIR`.")
        st.stop()
    return snapshot


def safe_filename(*parts: str) -> str:
    """Join ``parts`` into a download file name without path separators or odd characters."""
    return "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", part).strip("-.") or "x" for part in parts)
