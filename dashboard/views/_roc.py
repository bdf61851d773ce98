"""Results page panel: the ROC curves per finding of one arm at one site (diagnosis benchmark)."""

from __future__ import annotations

from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from dashboard.reports_reader import COMPARISON, ReportFiles, ReportReadError, read_roc_curves, read_table

__all__ = ["curve_areas", "render_roc"]

#: Largest difference between a curve's area and comparison.csv's AUC that is still rounding.
AUC_TOLERANCE = 1e-6


def curve_areas(points: pd.DataFrame) -> pd.Series:
    """Trapezoid area under each finding's curve (points in file order), indexed by finding."""
    return pd.Series({finding: float(np.trapezoid(curve["tpr"], curve["fpr"]))
                      for finding, curve in points.groupby("finding", sort=False)}, name="auc")


def _chart(points: pd.DataFrame, areas: pd.Series) -> alt.LayerChart:
    data = points.assign(curve=points["finding"].map(lambda f: f"{f} (AUC {areas[f]:.3f})"),
                         step=np.arange(len(points)))
    unit = alt.Scale(domain=[0, 1])
    lines = alt.Chart(data).mark_line().encode(
        x=alt.X("fpr:Q", title="false-positive rate (1 - specificity)", scale=unit),
        y=alt.Y("tpr:Q", title="true-positive rate (sensitivity)", scale=unit),
        color=alt.Color("curve:N", title="finding", sort=list(dict.fromkeys(data["curve"])),
                        legend=alt.Legend(orient="bottom", columns=3, labelLimit=0)),
        order="step:Q",  # the stored order: vertical steps share an fpr
        tooltip=["finding", alt.Tooltip("fpr:Q", format=".3f"), alt.Tooltip("tpr:Q", format=".3f")],
    )
    chance = alt.Chart(pd.DataFrame({"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]})).mark_line(
        strokeDash=[4, 4], color="gray").encode(x="fpr:Q", y="tpr:Q")
    return (lines + chance).properties(height=380)


def _reported(tables: list[Path], arm: str, site: str) -> pd.Series:
    """comparison.csv's per-finding AUCs of (arm, site), indexed by finding (empty without it)."""
    path = next((p for p in tables if p.name == COMPARISON), None)
    if path is None:
        return pd.Series(dtype="float64")
    try:
        table = read_table(path)
    except ReportReadError:
        return pd.Series(dtype="float64")  # the baselines panel already shows why
    columns = [c for c in table.columns if c.startswith("diag_auc_") and not c.startswith("diag_auc_macro")]
    if not {"baseline", "site"} <= set(table.columns) or not columns:
        return pd.Series(dtype="float64")
    row = table[(table["baseline"] == arm) & (table["site"] == site)]
    if row.empty:
        return pd.Series(dtype="float64")
    return pd.Series({c.removeprefix("diag_auc_"): float(row.iloc[0][c]) for c in columns})


def render_roc(files: ReportFiles, workdir: Path) -> None:
    """ROC curves per finding of the chosen arm and site, with their areas next to comparison.csv's AUCs."""
    st.subheader("ROC curves per finding")
    if files.roc_curves is None:
        st.info("ROC data not in this report (it predates them, or it is the --end-to-end "
                "comparison); re-run the diagnosis benchmark to get them:")
        st.code(f"fedmpt experiment compare --workdir {workdir}", language="bash")
        return
    try:
        curves = read_roc_curves(files.roc_curves)
    except ReportReadError as e:
        st.error(str(e))
        return
    if curves.empty:
        st.info(f"`{files.roc_curves.name}` holds no curve.")
        return
    left, right = st.columns(2)
    arm = left.selectbox("Arm", list(dict.fromkeys(curves["baseline"])), key="roc_arm")
    of_arm = curves[curves["baseline"] == arm]
    site = right.selectbox("Site", list(dict.fromkeys(of_arm["site"])), key="roc_site")
    points = of_arm[of_arm["site"] == site]
    areas = curve_areas(points)
    st.altair_chart(_chart(points, areas))
    reported = _reported(files.tables, arm, site)
    table = pd.DataFrame({"finding": areas.index, "AUC (area under the curve)": areas.to_numpy(),
                          f"AUC in {COMPARISON}": reported.reindex(areas.index).to_numpy()})
    st.dataframe(table, hide_index=True)
    differs = (areas - reported.reindex(areas.index)).abs() > AUC_TOLERANCE
    if differs.any():
        st.warning(f"The curves of {', '.join(areas.index[differs])} do not match {COMPARISON}'s "
                   f"AUCs: `{files.roc_curves.name}` and {COMPARISON} come from different runs; "
                   "re-run the comparison to write both again.")
    st.caption("Each curve is scored on the site's held-out patients (an external site: patients of a "
               "hospital no arm trained on); its area is the finding's AUC of the table above.")
