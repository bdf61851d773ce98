"""``fedmpt ingest``: validate, de-identify and cache a site's DICOM series and reports."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def ingest(
    site_dir: Path = typer.Argument(..., help="The hospital's site directory (dicom/, reports/, ...)."),
    out: Path = typer.Option(None, "--out", help="Cache folder (default: SITE_DIR/cache)."),
    preset: str = typer.Option("demo", help="Model preset whose input grid to ingest to."),
    qa: bool = typer.Option(False, "--qa", help="Also write CACHE/qa.json: shareable data-QA statistics."),
    workers: int = typer.Option(None, "--workers", min=1, help="Processes reading files and building volumes "
                                "(default: one per CPU core)."),
) -> None:
    """Validate, de-identify and cache a site's DICOM series and reports.

    Exits 1 when nothing was accepted (an empty cache). Re-runs reprocess only new or changed files.
    """
    from client_site.ingestion import ingest_site
    from federation.presets import get_preset

    result = ingest_site(site_dir, out or site_dir / "cache", config=get_preset(preset).preprocess, qa=qa,
                         workers=workers)
    typer.echo(json.dumps(result.summary, indent=2))
    typer.echo(f"every file, accepted or rejected with its reason (names files by path): {result.report_path}")
    if result.qa_path is not None:
        typer.echo(f"data-QA statistics (small counts suppressed): {result.qa_path}")
    if result.accepted == 0:
        raise typer.Exit(code=1)
