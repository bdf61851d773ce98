"""Results page: baselines (tables and plots), ROC curves per finding, the cross-site matrix, the
budget split per stage, downstream metrics per site."""

from __future__ import annotations

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import queries
from dashboard.reports_reader import (
    ReportReadError,
    find_reports,
    read_cross_site_matrix,
    read_table,
    reports_dir,
)
from dashboard.store_reader import QA_PREFIX
from dashboard.views._budget_split import render_budget_split
from dashboard.views._common import Snapshot, current_snapshot, safe_filename
from dashboard.views._roc import render_roc

__all__ = ["render"]

# Bookkeeping values every site reports; not results.
_NOT_RESULTS = {"num-examples", "num_examples"}
_MAX_CHART_ROWS = 200
_MAX_CHARTS = 4


def _table_charts(table: pd.DataFrame) -> list[tuple[str, alt.Chart]]:
    """Bar charts of a baselines table, one per numeric column (at most ``_MAX_CHARTS``).

    With two text columns (e.g. baseline and site) the bars are grouped by the second (one
    group per site, one bar per baseline); with one, each numeric column is a bar per label.
    """
    labels = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    numbers = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    if not labels or not numbers or len(table) > _MAX_CHART_ROWS:
        return []
    series = labels[0]
    group = labels[1] if len(labels) > 1 else labels[0]
    charts = []
    for metric in numbers[:_MAX_CHARTS]:
        data = table[[*dict.fromkeys([series, group]), metric]].dropna(subset=[metric]).astype(
            {series: str, group: str})
        chart = alt.Chart(data).mark_bar().encode(
            x=alt.X(f"{group}:N", title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y(f"{metric}:Q", title=metric),
            color=alt.Color(f"{series}:N", title=series, legend=alt.Legend(orient="bottom")),
            tooltip=[series, group, alt.Tooltip(f"{metric}:Q", format=".3f")],
        )
        if group != series:
            chart = chart.encode(xOffset=f"{series}:N")
        charts.append((metric, chart.properties(height=260)))
    return charts


def _baselines(tables: list[Path], plots: list[Path]) -> None:
    st.subheader("Baselines")
    if not tables and not plots:
        st.caption("No baseline table or plot in the reports folder.")
    for path in tables:
        st.markdown(f"**{path.stem.replace('_', ' ')}** (`{path.name}`)")
        try:
            table = read_table(path)
        except ReportReadError as e:
            st.error(str(e))
            continue
        charts = _table_charts(table)
        for col, (metric, chart) in zip(st.columns(max(1, len(charts))), charts, strict=False):
            col.markdown(f"*{metric}*")
            col.altair_chart(chart)
        st.dataframe(table, hide_index=True)
        st.download_button(f"Download {path.name}", table.to_csv(index=False).encode("utf-8"),
                           file_name=safe_filename(path.stem) + ".csv", mime="text/csv",
                           key=f"download_{path.name}")
    for path in plots:
        try:
            st.image(path.read_bytes(), caption=path.name)
        except OSError as e:
            st.error(f"Cannot read {path.name}: {e.strerror or e}")


def _heatmap(matrix: pd.DataFrame) -> alt.Chart:
    rows, cols = matrix.index.name or "trained at", matrix.columns.name or "evaluated at"
    long = matrix.rename_axis(index="row", columns="col").stack().rename("value").reset_index()
    base = alt.Chart(long).encode(
        x=alt.X("col:N", title=cols, sort=list(matrix.columns), axis=alt.Axis(labelAngle=0, orient="top")),
        y=alt.Y("row:N", title=rows, sort=list(matrix.index)),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("value:Q", title="value", scale=alt.Scale(scheme="viridis")),
        tooltip=[alt.Tooltip("row:N", title=rows), alt.Tooltip("col:N", title=cols),
                 alt.Tooltip("value:Q", format=".3f")],
    )
    middle = float(long["value"].median()) if len(long) else 0.0
    text = base.mark_text(fontSize=13).encode(
        text=alt.Text("value:Q", format=".3f"),
        color=alt.condition(alt.datum.value < middle, alt.value("white"), alt.value("black")),
    )
    return (cells + text).properties(height=alt.Step(44))


def _cross_site(path: Path | None, workdir: Path) -> None:
    st.subheader("Cross-site matrix")
    if path is None:
        st.caption(
            "No `cross_site_matrix.csv` yet (a model trained at each site alone, evaluated at "
            f"every site); `fedmpt experiment compare --workdir {workdir}` writes it."
        )
        return
    try:
        matrix = read_cross_site_matrix(path)
    except ReportReadError as e:
        st.error(str(e))
        return
    st.caption("Row: where the model was trained; column: where it was evaluated.")
    st.altair_chart(_heatmap(matrix))


def _downstream(snapshot: Snapshot) -> None:
    data = snapshot.data
    st.subheader("Downstream metrics per site")
    rows = [r for r in data.site_metrics if r["phase"] == queries.EVALUATE
            and str(r["metric"]) not in _NOT_RESULTS and not str(r["metric"]).startswith(QA_PREFIX)]
    if not rows:
        st.caption(f"No site has reported evaluation metrics in run `{data.run_id}` yet.")
        return
    last = max(int(r["round"]) for r in rows)
    long = queries.long_metrics_table([r for r in rows if int(r["round"]) == last])
    table = long.pivot(index="site", columns="metric", values="value")
    table.columns.name = None
    st.caption(f"Run `{data.run_id}`, round {last}: each site's evaluation on its held-out patients.")
    st.dataframe(table)


def render(snapshot: Snapshot) -> None:
    """Draw the baselines, their ROC curves, the cross-site heatmap, the budget split and the
    latest per-site evaluation."""
    st.title("Results")
    folder = reports_dir(snapshot.workdir)
    files = find_reports(folder)
    if files.empty:
        st.info(
            f"No comparison reports in `{folder}` yet. Run the baselines (local-only per site, "
            "centralized, federated without and with DP on the same split); the command writes "
            "tables (CSV), plots (PNG) and the cross-site matrix there:"
        )
        st.code(f"fedmpt experiment compare --workdir {snapshot.workdir}", language="bash")
    else:
        _baselines(files.tables, files.plots)
        render_roc(files, snapshot.workdir)
        _cross_site(files.cross_site_matrix, snapshot.workdir)
    render_budget_split(snapshot.data.site_metrics)
    _downstream(snapshot)


if __name__ == "__main__":
    render(current_snapshot())
