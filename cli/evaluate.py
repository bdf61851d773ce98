"""``fedmpt evaluate``: score the released global model at a site that has ground truth.

Runs at the site, on the site's machine: reads the site's cache and truth labels, and prints the
scorecard (:func:`client_site.downstream.scorecard.site_scorecard`); nothing is sent anywhere.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer


def evaluate(
    site_dir: Path = typer.Argument(..., help="An ingested site directory with truth/labels.csv."),
    workdir: Path = typer.Option(
        None, "--workdir", help="Score the latest checkpoint of the newest fine-tuning run of this workdir."),
    checkpoint: Path = typer.Option(
        None, "--checkpoint", help="Score this model file (round checkpoint, site model or state dict)."),
    preset: str = typer.Option("", help="Model preset, for files that do not name one."),
    samples: int = typer.Option(1000, help="Bootstrap resamples of the 95% confidence intervals."),
    as_json: bool = typer.Option(False, "--json", help="Print metrics and per-study results as JSON."),
) -> None:
    """Diagnosis AUC, report BLEU-4 / ROUGE-L / finding-F1, draft finding-F1, medication Jaccard /
    F1 / PR-AUC / DDI rate and pointing game of the model on the site's held-out patients, each
    with its 95% bootstrap CI and n (thresholds calibrated on the site's training patients)."""
    from cli.errors import BadValue, MissingInput
    from cli.report import _check_grid, _load_model
    from client_site.downstream.scorecard import site_scorecard

    if (workdir is None) == (checkpoint is None):
        raise typer.BadParameter("pass exactly one of --workdir DIR and --checkpoint PATH")
    if samples < 1:
        raise typer.BadParameter(f"--samples must be >= 1, got {samples}")
    if not (site_dir / "cache" / "index.json").is_file():
        raise MissingInput(f"{site_dir} is not ingested (no cache/index.json)", f"run `fedmpt ingest {site_dir}`")
    if not (site_dir / "truth" / "labels.csv").is_file():
        raise MissingInput(f"{site_dir / 'truth' / 'labels.csv'} is missing: scoring needs ground truth",
                           "write the labels CSV of docs/contracts.md section 1 (accession + one 0/1 "
                           "column per finding)")
    source = checkpoint if checkpoint is not None else _latest_finetune_checkpoint(workdir)
    model, info = _load_model(site_dir, source, preset)
    _check_grid(site_dir, model.cfg)
    try:
        card = site_scorecard(model, site_dir, samples=samples)
    except ValueError as e:
        raise BadValue(str(e)) from e
    if as_json:
        typer.echo(json.dumps(card.to_json(), ensure_ascii=False, indent=2))
        return
    typer.echo(f"model {info.get('file')} at {site_dir} ({len(card.studies)} held-out studies)")
    for name, metric in card.metrics.items():
        if math.isnan(metric.value):
            typer.echo(f"  {name:<28} undefined (n {metric.n})")
        else:
            typer.echo(f"  {name:<28} {metric.value:.3f} [{metric.ci_low:.3f}, {metric.ci_high:.3f}] n {metric.n}")


def _latest_finetune_checkpoint(workdir: Path) -> Path:
    """The highest-round checkpoint of the newest fine-tuning run under ``workdir``."""
    import torch

    from aggregator.checkpoints import latest_checkpoint
    from cli.errors import MissingInput

    runs = Path(workdir) / "aggregator" / "checkpoints"
    found = []
    for run in sorted(runs.iterdir()) if runs.is_dir() else []:
        last = latest_checkpoint(run)
        if last is None:
            continue
        config = torch.load(last, weights_only=True, map_location="cpu").get("config") or {}
        if config.get("task") == "finetune":
            found.append(last)
    if not found:
        raise MissingInput(f"{runs} holds no checkpoint of a fine-tuning run",
                           "run the federated fine-tuning first, or pass --checkpoint PATH")
    return max(found, key=lambda p: p.stat().st_mtime)
