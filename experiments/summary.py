"""Plain-text per-site summary of a run, printed at the end of ``fedmpt demo``."""

from __future__ import annotations

from pathlib import Path

from aggregator.results_store import ResultsStore

COLUMNS = (
    ("train", "epsilon", "epsilon"),
    ("train", "epsilon_budget", "budget"),
    ("evaluate", "val_loss", "val loss"),
)
PRETRAIN_COLUMNS = (("evaluate", "probe_auc_macro", "probe AUC"),)
FINETUNE_COLUMNS = (
    ("evaluate", "diag_auc_macro", "diag AUC"),
    ("evaluate", "med_f1", "med F1"),
    ("evaluate", "pointing_game", "pointing"),
)


def format_run_summary(aggregator_dir: Path, run_id: str) -> str:
    """Last known value of the key metrics per site, plus rounds taken part in."""
    store = ResultsStore(Path(aggregator_dir) / "results.sqlite", read_only=True)
    try:
        rows = store.site_metrics(run_id)
        participation = store.participation(run_id)
        run = next(r for r in store.runs() if r["run_id"] == run_id)
    finally:
        store.close()
    latest: dict[tuple[str, str, str], float | None] = {}
    for row in rows:  # ordered by round, so later rounds overwrite earlier ones
        latest[(row["site"], row["phase"], row["metric"])] = row["value"]
    sites = sorted({row["site"] for row in rows})
    finetune = any(row["metric"] == "diag_auc_macro" for row in rows)
    columns = COLUMNS + (FINETUNE_COLUMNS if finetune else PRETRAIN_COLUMNS)
    trained = {s: sum(1 for p in participation if p["site"] == s and p["phase"] == "train"
                      and p["status"] == "ok") for s in sites}
    header = f"{'site':14}" + "".join(f"{title:>12}" for _, _, title in columns) + f"{'rounds':>8}"
    lines = [f"Run {run_id}: {run['status']}, {run['num_rounds']} rounds, {run['strategy']}", header]
    for site in sites:
        cells = []
        for phase, metric, _ in columns:
            value = latest.get((site, phase, metric))
            cells.append(f"{value:>12.3f}" if value is not None else f"{'n/a':>12}")
        lines.append(f"{site:14}" + "".join(cells) + f"{trained[site]:>5}/{run['num_rounds']}")
    refused = [p for p in participation if p["status"] != "ok"]
    for p in refused:
        lines.append(f"  round {p['round']} {p['phase']}: {p['site'] or 'node ' + p['node_id']} "
                     f"did not take part: {p['reason']}")
    return "\n".join(lines)
