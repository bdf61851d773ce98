"""``fedmpt report draft``: site-local clinician drafts from the site's fine-tuned model.

Runs entirely inside the site directory: it may ingest a new study, reads the cache and the
site's model (``SITE_DIR/models/finetune/latest.pt``, kept from the last federated evaluation by
:mod:`federation.received_models`, or ``--model``), and writes ``cache/drafts/<key>.json`` and
``cache/explanations/<key>.npy`` for the case viewer. Nothing is sent anywhere.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import typer

from cli.errors import MissingInput

logger = logging.getLogger(__name__)

report_app = typer.Typer(help="Site-local drafts: findings, impression, medications, warnings.",
                         no_args_is_help=True)


@report_app.command("draft")
def report_draft(
    site: Path = typer.Option(..., "--site", help="The hospital's site directory (ingested)."),
    study: str = typer.Option(
        "", "--study", help="A DICOM study folder (ingested first if new), or a study key of the cache."),
    all_studies: bool = typer.Option(False, "--all", help="Draft every cached study (progress bar)."),
    limit: int = typer.Option(0, help="With --all: only the first N studies of the cache index (0: all)."),
    model: Path = typer.Option(
        None, "--model", help="Weights to use instead of SITE_DIR/models/finetune/latest.pt: a file of "
        "that store, a round checkpoint or a ClinicalMedMPT state dict."),
    preset: str = typer.Option("", help="Model preset, for --model files that do not name one."),
    threshold: float = typer.Option(
        None, help="Diagnosis probability from which a finding is stated, for every finding (default: the "
        "thresholds calibrated on the site's training patients)."),
    as_json: bool = typer.Option(False, "--json", help="Print the drafts as JSON."),
) -> None:
    """Draft a report for one study (--study) or for every cached study (--all)."""
    from client_site.downstream.drafts import DraftConfig, draft_cached_studies

    if bool(study) == all_studies:
        raise typer.BadParameter("pass exactly one of --study PATH|KEY and --all")
    try:
        config = DraftConfig(threshold=threshold)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    clinical_model, info = _load_model(site, model, preset)
    _check_grid(site, clinical_model.cfg)
    if limit < 0:
        raise typer.BadParameter(f"--limit must be >= 0, got {limit}")
    keys = _first_keys(site, limit) if all_studies else [_study_key(site, study)]
    drafts, calibration = draft_cached_studies(clinical_model, site, keys, config=config, model_info=info,
                                               progress=all_studies)
    if as_json:
        typer.echo(json.dumps({k: d.to_json(calibration=calibration, model=info) for k, d in drafts.items()},
                              ensure_ascii=False, indent=2))
    elif all_studies:
        typer.echo(f"drafted {len(drafts)} studies into {site / 'cache' / 'drafts'}")
    else:
        for key, draft in drafts.items():
            warnings = "".join(f"\n  - {w}" for w in draft.warnings) or " none"
            typer.echo(f"study {key} ({draft.language})\nFINDINGS: {draft.findings}\n"
                       f"IMPRESSION:\n{draft.impression}\nMEDICATIONS: {', '.join(draft.medications) or '-'}\n"
                       f"WARNINGS:{warnings}\nwrote cache/drafts/{key}.json and cache/explanations/{key}.npy")


def _first_keys(site: Path, limit: int) -> list[str] | None:
    """The first ``limit`` study keys of the cache index (None = all of them)."""
    from client_site.datasets import load_cache_index

    return [r.study_key for r in load_cache_index(site / "cache")][:limit] if limit else None


def _study_key(site: Path, study: str) -> str:
    """The cache key of ``--study``: a DICOM folder (ingested if new) or a key already cached."""
    from client_site.datasets import load_cache_index
    from client_site.ingestion.single_study import ingest_study

    path = Path(study)
    try:
        if path.is_dir():
            return ingest_study(site, path)
        cached = {r.study_key for r in load_cache_index(site / "cache")}
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e)) from e
    if study in cached:
        return study
    raise typer.BadParameter(f"--study {study!r} is neither a DICOM folder nor a study key of {site / 'cache'}")


def _check_grid(site: Path, cfg: Any) -> None:
    """Refuse a model whose input grid is not the cache's (the site must re-ingest)."""
    index_path = site / "cache" / "index.json"
    if not index_path.is_file():
        raise MissingInput(f"{index_path} does not exist", f"run `fedmpt ingest {site}` first")
    shape = tuple(json.loads(index_path.read_text(encoding="utf-8")).get("preprocess", {}).get("shape", ()))
    wanted = (cfg.num_slices, cfg.image_size, cfg.image_size)
    if shape != wanted:
        raise typer.BadParameter(f"the site's cache holds volumes of shape {shape} but the model needs "
                                 f"{wanted}; re-run `fedmpt ingest` with the model's preset")


def _load_model(site: Path, path: Path | None, preset: str) -> tuple[Any, dict[str, Any]]:
    """The ClinicalMedMPT to draft with and the provenance stored with each draft."""
    from client_site.downstream.model import BACKBONE_PREFIX
    from client_site.model_store import latest_model_path, read_model_file
    from client_site.tasks import FINETUNE, build_model
    from federation.presets import get_preset

    source = path or latest_model_path(site, FINETUNE)
    try:
        stored = read_model_file(source)
    except FileNotFoundError as e:
        raise MissingInput(f"{e}", "the site keeps the fine-tuned global model when it evaluates a "
                           "federated finetune round; run one, or pass --model WEIGHTS") from e
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    name = preset or stored.preset
    if stored.model_config is None and not name:
        raise typer.BadParameter(f"{source} does not name its model preset; pass --preset")
    try:
        cfg = get_preset(name).model if name else stored.model_config
        model = build_model(FINETUNE, cfg, init_state=stored.state)  # type: ignore[arg-type]
    except (ValueError, RuntimeError) as e:
        raise typer.BadParameter(f"{source} does not fit a ClinicalMedMPT of preset {name!r}: {e}") from e
    if not any(k.startswith(BACKBONE_PREFIX) for k in stored.state):
        logger.warning(
            "%s holds a pretrained backbone only: the diagnosis and medication heads are untrained", source)
    return model, {"file": str(source), "preset": name, **stored.meta}
