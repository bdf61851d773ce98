"""FedMPT consortium dashboard, a read-only Streamlit app over the aggregator's results store.

Run with ``streamlit run dashboard/app.py -- --workdir DIR`` (or ``FEDMPT_WORKDIR=DIR``), or
through ``fedmpt dashboard --workdir DIR``. Every page needs a login (users in
``DIR/aggregator/dashboard_users.json``). It reads ``DIR/aggregator/`` (results store, reports,
users) only and never opens the site-private ``DIR/sites/``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import streamlit as st

# `streamlit run dashboard/app.py` puts dashboard/ on sys.path, not the repository root; without
# an installed package the project's packages would not import.
if importlib.util.find_spec("dashboard") is None:  # pragma: no cover - depends on the install
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard.access import CONSORTIUM_PAGES, consortium_pages, restrict_run  # noqa: E402
from dashboard.auth import logout_button, require_login  # noqa: E402
from dashboard.errors import DashboardError, StoreMissingError  # noqa: E402
from dashboard.queries import current_run_id  # noqa: E402
from dashboard.store_reader import RunData, load_run, load_runs, store_signature  # noqa: E402
from dashboard.users import User, UserStore, consortium_users_path  # noqa: E402
from dashboard.views._common import Snapshot, clear_snapshot, publish_snapshot  # noqa: E402
from dashboard.views._guard import run_guarded  # noqa: E402
from dashboard.workdir import WORKDIR_ENV, demo_commands, resolve_workdir, store_path  # noqa: E402

#: Seconds between checks of the store for new rows while a run is running.
REFRESH_SECONDS = 5.0


_ICONS = {
    "views/overview.py": ":material/dashboard:",
    "views/sites.py": ":material/show_chart:",
    "views/privacy.py": ":material/shield:",
    "views/quality.py": ":material/fact_check:",
    "views/results.py": ":material/leaderboard:",
}


def _pages(user: User) -> list[st.Page]:
    # File pages (not callables) so that AppTest.switch_page can open each one.
    return [
        st.Page(path, title=CONSORTIUM_PAGES[path], icon=_ICONS[path], default=i == 0)
        for i, path in enumerate(consortium_pages(user))
    ]


def _watch(path: Path, seen: tuple[tuple[int, int], ...]) -> None:
    """Rerun the whole app when the store changes, checking every ``REFRESH_SECONDS``."""

    @st.fragment(run_every=REFRESH_SECONDS)
    def _check() -> None:
        if store_signature(path) != seen:
            st.rerun()

    _check()


def _no_workdir() -> None:
    st.info(
        "No workdir given. Start the dashboard with `fedmpt dashboard --workdir DIR`, "
        f"`streamlit run dashboard/app.py -- --workdir DIR` or set `{WORKDIR_ENV}=DIR`."
    )


def _no_store(workdir: Path, path: Path) -> None:
    fedmpt, make = demo_commands(workdir)
    st.info(
        f"No results store yet at `{path}`: no federated run has been started in this workdir. "
        f"Fill it with the demo run on the synthetic consortium: `{fedmpt}` (or `{make}`). "
        "This page refreshes by itself once the store appears."
    )
    st.code(fedmpt, language="bash")


def _select_run(runs: list[dict[str, Any]], current: str) -> dict[str, Any]:
    by_id = {str(r["run_id"]): r for r in runs}
    ids = list(by_id)
    chosen = st.selectbox(
        "Run",
        ids,
        index=ids.index(current),
        format_func=lambda rid: f"{rid} ({by_id[rid]['status']})",
        key="selected_run",
    )
    return by_id[str(chosen)]


def main() -> None:
    """Read the store once, let the reader pick a run, then draw the selected page."""
    st.set_page_config(page_title="FedMPT dashboard", page_icon=":material/monitoring:", layout="wide")
    workdir = resolve_workdir(sys.argv[1:], os.environ)
    if workdir is None:
        clear_snapshot()
        _no_workdir()
        st.stop()
    user = require_login(
        UserStore(consortium_users_path(workdir)),
        title="FedMPT dashboard",
        add_user_command=f"fedmpt dashboard users add --workdir {workdir} --name NAME --role lead",
    )
    page = st.navigation(_pages(user))
    with st.sidebar:
        logout_button(user)
    path = store_path(workdir)
    # Fingerprint before reading: a write that lands during the read triggers one more refresh.
    seen = store_signature(path)
    st.sidebar.caption(f"Workdir `{workdir}`")
    runs: list[dict[str, Any]] = []
    current: str | None = None
    data: RunData | None = None
    try:
        runs = load_runs(path)
        current = current_run_id(runs)
        if current is not None:
            with st.sidebar:
                run = _select_run(runs, current)
            data = restrict_run(load_run(path, run), user)
    except StoreMissingError:
        pass
    except DashboardError as e:
        clear_snapshot()
        st.error(f"Cannot read the results store: {e}. The dashboard only reads it; nothing was changed.")
        st.stop()
    # Keep watching while a run is running, and while there is nothing to show yet.
    if not runs or any(r["status"] == "running" for r in runs):
        with st.sidebar:
            st.caption(f"Checking for new results every {REFRESH_SECONDS:g} s.")
            _watch(path, seen)
    if not path.exists():
        clear_snapshot()
        _no_store(workdir, path)
        st.stop()
    if current is None or data is None:
        clear_snapshot()
        st.info(
            f"The results store at `{path}` holds no run yet. "
            f"Start one with `{demo_commands(workdir)[0]}`."
        )
        st.stop()
    publish_snapshot(
        Snapshot(workdir=workdir, store_path=path, runs=runs, current_run_id=current, data=data,
                 user=user)
    )
    run_guarded(page)


main()
