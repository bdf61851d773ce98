"""Write the baselines comparison: CSV + markdown tables, PNG plots, the cross-site matrix, ROC curves.

Everything goes to ``WORKDIR/aggregator/reports/`` (read by the dashboard's Results page,
``dashboard.reports_reader``). Rows are ``(baseline, site)`` pairs with one column per metric;
the cross-site matrix holds the diagnosis macro-AUC of each local-only model at every site;
``roc_curves.csv`` holds, per (baseline, site, finding), the ROC points whose trapezoid area is
that row's ``diag_auc_<finding>`` (only comparisons that keep them: the diagnosis benchmark).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

COMPARISON_CSV = "comparison.csv"
COMPARISON_MD = "comparison.md"
CROSS_SITE_CSV = "cross_site_matrix.csv"
COMPARISON_PNG = "comparison.png"
CROSS_SITE_PNG = "cross_site_matrix.png"
ROC_CSV = "roc_curves.csv"

#: Headline metrics, in the order of the issue's targets: (column, label, target). The draft is
#: a report too (what `fedmpt report draft` gives the clinician), so it is held to the report target.
HEADLINE: tuple[tuple[str, str, float], ...] = (
    ("diag_auc_macro", "diagnosis macro-AUC", 0.9),
    ("report_finding_f1", "report finding-F1", 0.8),
    ("draft_finding_f1", "draft finding-F1", 0.8),  # generated findings + impression from the diagnosis head
    ("med_f1", "medication F1", 0.7),
    ("pointing_game", "pointing game", 0.7),
)
REFERENCE = "centralized"


@dataclass(frozen=True)
class Comparison:
    """All measured rows of one ``experiment compare`` run.

    Attributes
    ----------
    rows : list of dict
        One per (baseline, site): ``baseline``, ``site``, ``epsilon`` (NaN without DP) and metrics.
    cross_site : dict of (str, str) to float
        ``(trained at, evaluated at) -> diag_auc_macro`` of the local-only models.
    settings : dict of str to object
        What was run (sizes, rounds, seeds), printed at the top of the markdown.
    roc_curves : list of dict
        ROC points, one per (baseline, site, finding, point): ``baseline``, ``site``,
        ``finding``, ``fpr``, ``tpr`` (:func:`roc_records`); empty when the run kept none.
    """

    rows: list[dict[str, object]]
    cross_site: dict[tuple[str, str], float]
    settings: dict[str, object]
    roc_curves: list[dict[str, object]] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """The rows as a DataFrame, baselines in run order."""
        return pd.DataFrame(self.rows)


def roc_records(baseline: str, site: str,
                curves: Mapping[str, tuple[Sequence[float], Sequence[float]]]) -> list[dict[str, object]]:
    """The ROC points of one (baseline, site) row, finding by finding, as ``roc_curves`` records."""
    return [{"baseline": baseline, "site": site, "finding": finding, "fpr": float(x), "tpr": float(y)}
            for finding, (fpr, tpr) in curves.items() for x, y in zip(fpr, tpr, strict=True)]


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _markdown_table(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def target_checks(frame: pd.DataFrame, dp_max_epsilon: float = 8.0) -> list[str]:
    """Sentences saying, per site, whether each target was met, with the figures."""
    lines: list[str] = []
    fed_dp = frame[frame["baseline"].str.startswith("federated-dp")
                   & (frame["epsilon"] <= dp_max_epsilon + 1e-9)]
    for site, rows in frame.groupby("site", sort=False):
        central = rows[rows["baseline"] == REFERENCE]["diag_auc_macro"]
        local = rows[rows["baseline"] == "local-only"]["diag_auc_macro"]
        for _, fed in fed_dp[fed_dp["site"] == site].iterrows():
            auc = float(fed["diag_auc_macro"])
            parts = [f"{site}, {fed['baseline']} (epsilon {_fmt(float(fed['epsilon']))}): "
                     f"macro-AUC {_fmt(auc)}"]
            if len(central):
                ratio = auc / float(central.iloc[0]) if float(central.iloc[0]) else math.nan
                parts.append(f"{_fmt(ratio)}x centralized (target >= 0.95: "
                             f"{'met' if ratio >= 0.95 else 'missed'})")
            if len(local):
                beats = auc > float(local.iloc[0])
                parts.append(f"local-only {_fmt(float(local.iloc[0]))} "
                             f"({'beaten' if beats else 'not beaten'})")
            lines.append("; ".join(parts))
    for column, label, target in HEADLINE:
        if column not in frame:
            continue
        best = frame.groupby("baseline", sort=False)[column].mean()
        lines.append(f"{label} (mean over sites, target >= {target}): "
                     + ", ".join(f"{b} {_fmt(float(v))}" for b, v in best.items()))
    return lines


def _pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend (no display on a server)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bar_plot(frame: pd.DataFrame, path: Path) -> None:
    plt = _pyplot()
    present = [(c, label, t) for c, label, t in HEADLINE if c in frame]
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.6), squeeze=False)
    for ax, (column, label, target) in zip(axes[0], present, strict=True):
        wide = frame.pivot(index="site", columns="baseline", values=column)
        wide = wide[list(dict.fromkeys(frame["baseline"]))]
        wide.plot.bar(ax=ax, rot=0, legend=False, width=0.85)
        ax.axhline(target, color="black", linestyle="--", linewidth=1)
        ax.set_title(f"{label} (target {target})", fontsize=10)
        ax.set_ylim(0, 1)
        ax.set_xlabel("")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _heatmap_plot(matrix: pd.DataFrame, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.4 * len(matrix.columns) + 2, 1.1 * len(matrix) + 1.5))
    image = ax.imshow(matrix.to_numpy(dtype=float), vmin=0.5, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=20)
    ax.set_yticks(range(len(matrix.index)), matrix.index)
    ax.set_xlabel("evaluated at")
    ax.set_ylabel("trained at (local-only)")
    for (i, j), value in pd.DataFrame(matrix.to_numpy()).stack().items():
        ax.text(j, i, _fmt(float(value)), ha="center", va="center", color="white")
    fig.colorbar(image, ax=ax, label="diagnosis macro-AUC")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cross_site_frame(cross_site: Mapping[tuple[str, str], float], sites: Sequence[str]) -> pd.DataFrame:
    """Wide matrix: index = trained at, columns = evaluated at."""
    data = {evaluated: [cross_site.get((trained, evaluated), math.nan) for trained in sites]
            for evaluated in sites}
    frame = pd.DataFrame(data, index=pd.Index(list(sites), name="trained at"))
    frame.columns.name = "evaluated at"
    return frame


def write_reports(comparison: Comparison, folder: Path) -> list[Path]:
    """Write the CSV/markdown tables, both plots, the cross-site matrix and the ROC points (when
    the comparison has them; an older run's ROC file is removed otherwise); return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = comparison.table()
    sites = list(dict.fromkeys(frame["site"]))
    matrix = cross_site_frame(comparison.cross_site, sites)
    paths = [folder / COMPARISON_CSV, folder / COMPARISON_MD, folder / CROSS_SITE_CSV,
             folder / COMPARISON_PNG, folder / CROSS_SITE_PNG]
    frame.to_csv(paths[0], index=False)
    settings = "\n".join(f"- {k}: {v}" for k, v in comparison.settings.items())
    checks = "\n".join(f"- {line}" for line in target_checks(frame))
    paths[1].write_text(
        "# Baselines comparison\n\n" + settings + "\n\n" + _markdown_table(frame)
        + "\n\n## Targets\n\n" + checks + "\n\n## Cross-site matrix (diagnosis macro-AUC)\n\n"
        + _markdown_table(matrix.reset_index()) + "\n", encoding="utf-8")
    matrix.reset_index().to_csv(paths[2], index=False)
    _bar_plot(frame, paths[3])
    _heatmap_plot(matrix, paths[4])
    roc = folder / ROC_CSV
    if comparison.roc_curves:
        pd.DataFrame(comparison.roc_curves).to_csv(roc, index=False)
        paths.append(roc)
    else:
        roc.unlink(missing_ok=True)  # it would belong to another run
    return paths
