"""Privacy page: each site's cumulative epsilon against its own budget, and what is left."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import queries
from dashboard.privacy_queries import epsilon_history, privacy_table
from dashboard.views._common import Snapshot, current_snapshot

__all__ = ["render"]

PROJECTION_NOTE = (
    "**More rounds (linear projection)** = remaining budget ÷ the epsilon the site's last trained "
    "round cost, rounded down. It assumes every further round costs as much as the last one; "
    "under RDP accounting with unchanged noise, sample rate and steps that is an upper bound on "
    "the per-round spend, so the projected number of rounds is conservative, not a promise. "
    "With a single trained round the whole epsilon of that round counts as its cost. Any change "
    "of noise, sample rate or steps changes the cost. Each site enforces its own budget and "
    "refuses a round that would take it past the budget."
)

_COLUMNS = {
    "rounds_trained": st.column_config.NumberColumn("rounds trained"),
    "last_round": st.column_config.NumberColumn("last round"),
    "epsilon": st.column_config.NumberColumn("epsilon spent", format="%.3f"),
    "epsilon_budget": st.column_config.NumberColumn("budget", format="%.3f"),
    "remaining": st.column_config.NumberColumn("remaining", format="%.3f"),
    "delta": st.column_config.NumberColumn("delta", format="%.1e"),
    "last_round_spend": st.column_config.NumberColumn("last round's spend", format="%.3f"),
    "projected_rounds_left": st.column_config.NumberColumn("more rounds (linear projection)"),
    "failed_train_rounds": st.column_config.NumberColumn("refused/failed train rounds"),
}


def _chart(history: pd.DataFrame) -> alt.Chart:
    long = history.melt(
        id_vars=["round", "site"], value_vars=["epsilon", "epsilon_budget"], var_name="series"
    ).dropna()
    long["series"] = long["series"].map({"epsilon": "spent", "epsilon_budget": "budget"})
    return (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=alt.X("round:Q", title="round", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("value:Q", title="cumulative epsilon"),
            color=alt.Color("site:N", title="site"),
            strokeDash=alt.StrokeDash("series:N", title="", sort=["spent", "budget"]),
            tooltip=["site", "round", "series", alt.Tooltip("value:Q", format=".3f")],
        )
    )


def render(snapshot: Snapshot) -> None:
    """Draw epsilon against budget over rounds, the budget table and the refused rounds."""
    data = snapshot.data
    st.title("Privacy budget")
    st.caption(
        f"Run `{data.run_id}`. Epsilon is the cumulative spend each site reported after each "
        "round it trained (from its own ledger); the budget is the site's own."
    )
    table = privacy_table(data.site_metrics, data.participation)
    history = epsilon_history(data.site_metrics)
    if history.empty:
        st.info("No site has reported its privacy spend in this run yet.")
        if table.empty:
            return
    else:
        st.altair_chart(_chart(history))
    st.dataframe(table.reset_index(), hide_index=True, column_config=_COLUMNS)
    st.caption(PROJECTION_NOTE)

    refused = queries.failed_replies(r for r in data.participation if r["phase"] == queries.TRAIN)
    if not refused.empty:
        st.subheader("Refused or failed training rounds")
        st.dataframe(refused, hide_index=True)


if __name__ == "__main__":
    render(current_snapshot())
