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


SCORECARD_METRICS = (("diag_auc_macro", "diagnosis AUC"), ("draft_finding_f1", "draft finding-F1"),
                     ("med_f1", "medication F1"))
"""What the demo prints per site from the scorecard, each with its 95% bootstrap CI and n."""


def format_scorecards(site_dirs: list[Path], checkpoint: Path, *, samples: int = 1000) -> str:
    """The fine-tuned global model in ``checkpoint`` scored at every site on its held-out patients
    (:func:`~client_site.downstream.scorecard.site_scorecard`, thresholds calibrated on the site's
    training patients; free generation and the pointing game left out for time)."""
    from client_site.downstream.scorecard import site_scorecard
    from client_site.model_store import read_model_file
    from client_site.tasks import FINETUNE, build_model
    from federation.presets import get_preset

    stored = read_model_file(checkpoint)
    if stored.preset is None:
        raise ValueError(f"{checkpoint} does not name its model preset")
    model = build_model(FINETUNE, get_preset(stored.preset).model, init_state=stored.state)
    header = f"{'site':14}" + "".join(f"{title + ' [95% CI]':>28}{'n':>5}" for _, title in SCORECARD_METRICS)
    lines = [f"Fine-tuned model {checkpoint.name} on each site's held-out patients "
             f"({samples} bootstrap resamples):", header]
    for site_dir in site_dirs:
        card = site_scorecard(model, site_dir, samples=samples, generation=False)  # type: ignore[arg-type]
        cells = []
        for key, _ in SCORECARD_METRICS:
            m = card.metrics[key]
            text = "undefined" if m.value != m.value else f"{m.value:.3f} [{m.ci_low:.2f}, {m.ci_high:.2f}]"
            cells.append(f"{text:>28}{m.n:>5}")
        lines.append(f"{site_dir.name:14}" + "".join(cells))
    return "\n".join(lines)
