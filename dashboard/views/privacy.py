"""Privacy page: each site's cumulative epsilon against its own budget, and what is left."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import queries
from dashboard.access import sees_every_site
from dashboard.privacy_queries import epsilon_history, privacy_table, stage_split_table
from dashboard.reports_reader import MIA_FILE, ReportReadError, read_mia, reports_dir
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


# Beyond this many sites the per-site tiles would wrap into a wall; the table has them all.
_MAX_TILES = 8

MIA_NOTE = (
    "A membership-inference attack tries to tell the site's training patients (members) from "
    "its held-out patients using the released global model. AUC 0.5 means the attack does no "
    "better than a coin flip; the closer to 0.5, the less the model reveals about who was in "
    "the training data. Epsilon is the site's spend when the audited model was trained "
    "(blank or inf: trained without DP)."
)


def _tiles(table: pd.DataFrame) -> None:
    """One tile per site: epsilon spent / budget, and what is left (red when no round is)."""
    if table.empty or len(table) > _MAX_TILES:
        return
    for col, (site, row) in zip(st.columns(len(table)), table.iterrows(), strict=True):
        spent, budget, remaining = row["epsilon"], row["epsilon_budget"], row["remaining"]
        rounds = row["projected_rounds_left"]
        value = "–" if pd.isna(spent) else f"ε {spent:.2f}"
        if not pd.isna(budget):
            value += f" / {budget:.2f}"
        delta = None
        if not pd.isna(remaining):
            delta = f"{remaining:.2f} left"
            if not pd.isna(rounds):
                delta += f", {int(rounds)} more round{'s' if rounds != 1 else ''}"
        exhausted = not pd.isna(rounds) and rounds == 0
        col.metric(str(site), value, delta=delta, delta_color="inverse" if exhausted else "normal",
                   border=True)


def _mia_chart(results: pd.DataFrame) -> alt.LayerChart:
    """Attack AUC per site (bars), or against epsilon when a site was audited at several."""
    finite = results["epsilon"].where(results["epsilon"].abs() < float("inf"))
    base = alt.Chart(results.assign(eps=finite))
    auc = alt.Y("auc:Q", title="attack AUC", scale=alt.Scale(domain=[0, 1]))
    tooltip = ["site", "epsilon", alt.Tooltip("auc:Q", format=".3f")]
    if results.groupby("site").size().max() > 1:
        marks = base.mark_line(point=True).encode(
            x=alt.X("eps:Q", title="epsilon"), y=auc, color=alt.Color("site:N"), tooltip=tooltip
        )
    else:
        marks = base.mark_bar().encode(
            x=alt.X("site:N", title="site", axis=alt.Axis(labelAngle=0)), y=auc, tooltip=tooltip
        )
    chance = alt.Chart(pd.DataFrame({"auc": [0.5]})).mark_rule(strokeDash=[4, 4]).encode(y="auc:Q")
    return (marks + chance).properties(height=260)


def _mia(snapshot: Snapshot) -> None:
    st.subheader("Membership-inference audit")
    path = reports_dir(snapshot.workdir) / MIA_FILE
    if not path.is_file():
        st.info(
            "No membership-inference audit yet. Run it against the released global model; it "
            f"writes `{path}`:"
        )
        st.code(f"fedmpt audit mia --workdir {snapshot.workdir}", language="bash")
        return
    try:
        audit = read_mia(path)
    except ReportReadError as e:
        st.error(f"Cannot show the audit: {e}")
        return
    results = audit.results
    if not sees_every_site(snapshot.user):
        results = results[results["site"] == snapshot.user.site]
    if results.empty:
        st.info("The audit holds no result for the sites you may see.")
        return
    if audit.details:
        st.caption(" · ".join(f"{k}: {v}" for k, v in audit.details.items()))
    st.altair_chart(_mia_chart(results))
    st.dataframe(
        results, hide_index=True,
        column_config={"auc": st.column_config.NumberColumn("attack AUC", format="%.3f"),
                       "epsilon": st.column_config.NumberColumn("epsilon", format="%.2f")},
    )
    st.caption(MIA_NOTE)


def render(snapshot: Snapshot) -> None:
    """Draw epsilon against budget over rounds, the budget table, refused rounds, the MIA audit."""
    data = snapshot.data
    st.title("Privacy budget")
    st.caption(
        f"Run `{data.run_id}`. Epsilon is the cumulative spend each site reported after each "
        "round it trained (from its own ledger); the budget is the site's own."
    )
    table = privacy_table(data.site_metrics, data.participation)
    history = epsilon_history(data.site_metrics)
    _tiles(table)
    if history.empty:
        st.info("No site has reported its privacy spend in this run yet.")
    else:
        st.altair_chart(_chart(history))
    if not table.empty:
        st.dataframe(table.reset_index(), hide_index=True, column_config=_COLUMNS)
        st.caption(PROJECTION_NOTE)

    split = stage_split_table(data.site_metrics)
    if not split.empty:
        st.subheader("Budget split per stage")
        st.dataframe(split.reset_index(), hide_index=True)
        st.caption("Each stage's epsilon is priced on its own segments of the site's ledger; the "
                   "share is the most it may spend (site.toml ssl_share). Together the stages "
                   "never pass the site's budget.")

    refused = queries.failed_replies(r for r in data.participation if r["phase"] == queries.TRAIN)
    if not refused.empty:
        st.subheader("Refused or failed training rounds")
        st.dataframe(refused, hide_index=True)
    _mia(snapshot)


if __name__ == "__main__":
    render(current_snapshot())
