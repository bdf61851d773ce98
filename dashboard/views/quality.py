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

# Groups drawn as bars as well as tabled: (y title, stacked); histograms side by side per site.
_CHARTED = {
    "Rejected files by reason": ("files", True),
    "Series per study": ("studies", False),
    "Slice spacing (mm)": ("series", False),
    "Slice thickness (mm)": ("series", False),
    "Pixel spacing (mm)": ("series", False),
    "Finding prevalence (fraction of studies)": ("fraction", False),
}


def _bars(table: pd.DataFrame, y_title: str, stacked: bool) -> alt.Chart:
    order = [str(c) for c in table.columns]
    long = table.reset_index().melt(id_vars="site", var_name="statistic").dropna()
    bars = alt.Chart(long).mark_bar().encode(
        x=alt.X("site:N", title="site", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("value:Q", title=y_title, stack="zero" if stacked else None),
        color=alt.Color("statistic:N", title="", sort=order),
        tooltip=["site", "statistic", alt.Tooltip("value:Q", format=".3g")],
    )
    bars = bars if stacked else bars.encode(xOffset=alt.XOffset("statistic:N", sort=order))
    return bars.properties(height=240)


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
        "Aggregate ingestion statistics each site shares (its latest report of each). An empty "
        "cell (None): suppressed by the site (small count) or not computed, never zero."
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
    for group in [title for title, _, _ in QA_GROUPS] + [OTHER]:
        if not (latest["group"] == group).any():
            continue
        table = qa_group_table(latest, group)
        st.subheader(group)
        if group in _CHARTED and not table.isna().all().all():
            y_title, stacked = _CHARTED[group]
            st.altair_chart(_bars(table, y_title, stacked))
        st.dataframe(table)
    with st.expander("Where these numbers come from"):
        st.dataframe(qa_provenance(latest), hide_index=True)


if __name__ == "__main__":
    render(current_snapshot())
