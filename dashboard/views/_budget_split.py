"""Results page panel: each stage's share of each site's budget, as configured and as spent."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.privacy_queries import CONFIGURED, SPENT, STAGES, stage_shares
from dashboard.queries import Row

__all__ = ["render_budget_split"]


def _chart(shares: pd.DataFrame) -> alt.Chart:
    data = shares.dropna(subset=["share"]).assign(position=lambda d: d["stage"].map(list(STAGES).index))
    return alt.Chart(data).mark_bar().encode(
        x=alt.X("share:Q", title="share of the site's epsilon budget", scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%")),
        y=alt.Y("basis:N", title=None, sort=[CONFIGURED, SPENT]),
        row=alt.Row("site:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left")),
        color=alt.Color("stage:N", title="stage", sort=list(STAGES)),
        order=alt.Order("position:Q"),  # SSL first, as the stages run
        tooltip=["site", "basis", "stage", alt.Tooltip("epsilon:Q", format=".3f"),
                 alt.Tooltip("share:Q", format=".1%")],
    ).properties(height=alt.Step(22))


def render_budget_split(site_metrics: list[Row]) -> None:
    """Stacked bars per site: the SSL and fine-tuning caps (configured) and what each has spent."""
    st.subheader("Budget split per stage")
    shares = stage_shares(site_metrics)
    if shares.empty:
        st.caption("No site has reported its budget split per stage in this run yet.")
        return
    st.altair_chart(_chart(shares))
    wide = shares.pivot_table(index="site", columns=["basis", "stage"], values="share", dropna=False)
    wide.columns = [f"{stage} {basis}" for basis, stage in wide.columns]
    st.dataframe(wide, column_config={c: st.column_config.NumberColumn(c, format="percent")
                                      for c in wide.columns})
    unsplit = shares[(shares["basis"] == CONFIGURED) & shares["share"].isna()]["site"].unique()
    note = ("Configured: each stage's cap (site.toml ssl_share; fine-tuning gets the rest). Spent: "
            "each stage's epsilon, priced on its own segments of the site's ledger (the Privacy page "
            "has the figures).")
    if len(unsplit):
        note += f" No split configured at {', '.join(map(str, unsplit))}: each stage may spend the whole budget."
    st.caption(note)
