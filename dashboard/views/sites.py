"""Per-site metrics page: one metric across rounds, every selected site side by side."""

from __future__ import annotations

import streamlit as st

from dashboard import queries
from dashboard.store_reader import QA_PREFIX
from dashboard.views._common import Snapshot, current_snapshot, safe_filename

__all__ = ["render"]

_DEFAULT_METRIC = {queries.TRAIN: "epsilon", queries.EVALUATE: "val_loss"}
_AGGREGATE = "(aggregate)"


def render(snapshot: Snapshot) -> None:
    """Draw the metric picker, the chart, the table and the CSV downloads."""
    data = snapshot.data
    rows = data.site_metrics
    st.title("Per-site metrics")
    st.caption(f"Run `{data.run_id}`")
    if not rows:
        st.info("No site has reported metrics in this run yet.")
        return

    phase = st.radio("Phase", [queries.TRAIN, queries.EVALUATE], horizontal=True, key="metrics_phase")
    # Ingestion statistics (qa_*) have their own page.
    names = [n for n in queries.metric_names(rows, phase) if not n.startswith(QA_PREFIX)]
    if not names:
        st.info(f"No {phase} metrics recorded in this run yet.")
        return
    default = _DEFAULT_METRIC[phase]
    metric = st.selectbox(
        "Metric", names, index=names.index(default) if default in names else 0, key=f"metric_{phase}"
    )
    phase_sites = queries.site_names(r for r in rows if r["phase"] == phase)
    chosen = st.multiselect(
        "Sites", phase_sites, default=phase_sites, key=f"sites_{data.run_id}_{phase}"
    )
    if not chosen:
        st.warning("Select at least one site.")
        return

    table = queries.metric_table(rows, phase, metric, chosen)
    aggregate = queries.global_metric_series(data.global_metrics, phase, metric)
    if not aggregate.empty and st.checkbox("Show the aggregated value", key="metrics_aggregate"):
        table = table.join(aggregate.rename(_AGGREGATE), how="outer")

    st.line_chart(table, x_label="round", y_label=metric)
    if table.isna().to_numpy().any():
        st.caption(
            "Blank cells and gaps: the site did not report the value that round, or reported it "
            "as undefined (e.g. the probe AUC of a finding absent from its validation set)."
        )
    st.dataframe(table)
    st.download_button(
        "Download this table (CSV)",
        table.to_csv().encode("utf-8"),
        file_name=safe_filename(data.run_id, phase, metric) + ".csv",
        mime="text/csv",
        key="download_metric",
    )
    st.download_button(
        "Download every per-site metric of this run (long CSV)",
        queries.long_metrics_table(rows).to_csv(index=False).encode("utf-8"),
        file_name=safe_filename(data.run_id, "site-metrics") + ".csv",
        mime="text/csv",
        key="download_all",
    )


if __name__ == "__main__":
    render(current_snapshot())
