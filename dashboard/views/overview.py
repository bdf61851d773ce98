"""Overview page: runs, the current round, who took part in each round and why replies failed."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import queries
from dashboard.views._common import Snapshot, current_snapshot

__all__ = ["render"]

_CELL_STYLE = {
    queries.OK: "background-color: #c8e6c9; color: #1b5e20",
    queries.FAILED: "background-color: #ffcdd2; color: #b71c1c",
}
_NOT_SAMPLED = "–"


def _participation(data_participation: list[dict[str, object]], phase: str) -> None:
    matrix = queries.participation_matrix(data_participation, phase)
    if matrix.empty:
        st.caption(f"No {phase} replies recorded yet.")
        return
    # Arrow needs string column names; keep the round number readable.
    shown = matrix.rename(columns=lambda r: f"round {r}").fillna(_NOT_SAMPLED)
    st.dataframe(shown.style.map(lambda v: _CELL_STYLE.get(str(v), "")))


def _config(run: dict[str, object]) -> None:
    with st.expander(f"Strategy `{run['strategy']}` and run configuration"):
        try:
            config = json.loads(str(run.get("config_json") or "{}"))
        except json.JSONDecodeError:
            st.caption("The run's configuration was not recorded as JSON.")
            return
        st.json(config, expanded=True)


def render(snapshot: Snapshot) -> None:
    """Draw the overview of the selected run and the list of all runs."""
    data = snapshot.data
    run = data.run
    st.title("Overview")
    if data.run_id != snapshot.current_run_id:
        st.caption(f"Showing run `{data.run_id}`; the current run is `{snapshot.current_run_id}`.")
    current = queries.current_round(data.participation, data.site_metrics)
    sites = queries.site_names(data.site_metrics, data.participation)
    cols = st.columns(4)
    cols[0].metric("Run", data.run_id)
    cols[1].metric("Status", str(run["status"]))
    cols[2].metric("Round", f"{current or 0} / {run['num_rounds']}")
    cols[3].metric("Sites", len(sites))
    if run["status"] == "failed":
        st.error(f"The run failed: {run.get('status_detail') or 'no detail recorded'}")
    elif run.get("status_detail"):
        st.caption(str(run["status_detail"]))
    _config(run)

    st.subheader("Runs")
    st.dataframe(
        queries.runs_table(snapshot.runs),
        hide_index=True,
        column_config={
            "num_rounds": st.column_config.NumberColumn("rounds"),
            "started": st.column_config.DatetimeColumn("started (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "finished": st.column_config.DatetimeColumn("finished (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        },
    )

    st.subheader("Participation per site and round")
    st.caption(
        f"ok = the site replied; failed = it refused or failed (reasons below); "
        f"{_NOT_SAMPLED} = not sampled that round."
    )
    left, right = st.columns(2)
    with left:
        st.markdown("**Train**")
        _participation(data.participation, queries.TRAIN)
    with right:
        st.markdown("**Evaluate**")
        _participation(data.participation, queries.EVALUATE)

    st.subheader("Failed or refused replies")
    failed: pd.DataFrame = queries.failed_replies(data.participation)
    if failed.empty:
        st.success("Every sampled site replied in every round so far.")
    else:
        st.dataframe(failed, hide_index=True)


if __name__ == "__main__":
    render(current_snapshot())
