"""Data-quality page: each site's shared aggregate ingestion statistics, side by side."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.access import only_site, sees_every_site
from dashboard.errors import DashboardError
from dashboard.qa_queries import OTHER, QA_GROUPS, latest_qa, qa_group_table, qa_provenance
from dashboard.store_reader import load_qa_metrics
from dashboard.views._common import Snapshot, current_snapshot

__all__ = ["render"]

_CHARTED = {"Rejected files by reason", "Finding prevalence (fraction of studies)"}


def _bars(table: pd.DataFrame, stacked: bool) -> alt.Chart:
    long = table.reset_index().melt(id_vars="site", var_name="statistic").dropna()
    bars = alt.Chart(long).mark_bar().encode(
        x=alt.X("site:N", title="site"),
        y=alt.Y("value:Q", title="files" if stacked else "fraction", stack="zero" if stacked else None),
        color=alt.Color("statistic:N", title=""),
        tooltip=["site", "statistic", alt.Tooltip("value:Q", format=".3g")],
    )
    return bars if stacked else bars.encode(xOffset="statistic:N")


def _empty(snapshot: Snapshot) -> None:
    st.info(
        "No site has shared data-quality statistics yet. Each site computes them from its own "
        "ingestion (counts accepted and rejected by reason, spacing, HU range, report coverage, "
        "finding prevalence; small counts suppressed) and sends only these aggregates, as "
        "`qa_*` metrics, to the aggregator. At each site run:"
    )
    st.code("fedmpt ingest SITE_DIR --qa", language="bash")
    st.caption(f"The statistics then appear here from the results store `{snapshot.store_path}`.")


def render(snapshot: Snapshot) -> None:
    """Draw one table per group of statistics, with charts for rejections and prevalence."""
    st.title("Data quality")
    st.caption(
        "Aggregate ingestion statistics each site shares (its latest report of each). Blank: "
        "suppressed by the site (small count) or not computed."
    )
    try:
        rows = load_qa_metrics(snapshot.store_path)
    except DashboardError as e:
        st.error(f"Cannot read the data-quality statistics: {e}")
        return
    if not sees_every_site(snapshot.user):
        rows = [dict(r) for r in only_site(rows, str(snapshot.user.site))]
    latest = latest_qa(rows)
    if latest.empty:
        _empty(snapshot)
        return
    groups = list(dict.fromkeys([t for t, _ in QA_GROUPS] + [OTHER]))
    for group in groups:
        if not (latest["group"] == group).any():
            continue
        table = qa_group_table(latest, group)
        st.subheader(group)
        if group in _CHARTED and not table.isna().all().all():
            st.altair_chart(_bars(table, stacked=group.startswith("Rejected")))
        st.dataframe(table, column_config={"site": st.column_config.TextColumn("site")})
    with st.expander("Where these numbers come from"):
        st.dataframe(qa_provenance(latest), hide_index=True)


if __name__ == "__main__":
    render(current_snapshot())
