"""``fedmpt demo``: the whole job on the embedded synthetic consortium, end to end."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from client_site.layout import SiteLayout
from client_site.site_config import SITE_CONFIG, write_site_config
from federation.config import FederationConfig
from federation.presets import get_preset
from federation.summary import format_run_summary
from federation.simulation import run_in_simulation

logger = logging.getLogger(__name__)

# Each hospital sets its own budget; the third one accepts less, so it sits out the last
# round rather than cross its budget -- the refusal shows up in the dashboard.
DEMO_BUDGETS = (9.0, 12.0, 5.5)
DEMO_DELTA = 1e-5


def prepare_sites(
    workdir: Path, *, n_sites: int, patients: int, seed: int, preset: str,
    folder: str = "sites", budgets: tuple[float, ...] = DEMO_BUDGETS, allow_non_dp: bool = False,
) -> list[Path]:
    """Generate (once), configure and ingest (with data QA) the synthetic sites under ``workdir/folder``.

    Site ``i`` gets the budget ``budgets[i % len(budgets)]``; ``allow_non_dp`` is for baselines.
    """
    from client_site.ingestion import ingest_site
    from client_site.synthetic import generate_consortium, site_names

    sites_root = workdir / folder
    names = site_names(n_sites)
    site_dirs = [sites_root / name for name in names]
    if not all((d / "dicom").is_dir() for d in site_dirs):
        logger.info("generating %d synthetic hospitals x %d patients", n_sites, patients)
        generate_consortium(sites_root, n_sites=n_sites, patients_per_site=patients, seed=seed)
    for index, (name, site_dir) in enumerate(zip(names, site_dirs, strict=True)):
        if not (site_dir / SITE_CONFIG).exists():
            write_site_config(site_dir, name=name, delta=DEMO_DELTA, allow_non_dp=allow_non_dp,
                              epsilon=budgets[index % len(budgets)])
        logger.info("ingesting %s", name)
        # With QA: each site then shares its data-quality statistics (dashboard: Data quality).
        ingest_site(site_dir, SiteLayout(site_dir).cache_dir, config=get_preset(preset).preprocess, qa=True)
    return site_dirs


def run_demo(
    workdir: Path,
    *,
    n_sites: int = 3,
    patients: int = 40,
    rounds: int = 3,
    seed: int = 0,
    preset: str = "demo",
) -> str:
    """Run the demo and return the text to print: per-site table and where to look."""
    started = time.monotonic()
    workdir = Path(workdir)
    site_dirs = prepare_sites(workdir, n_sites=n_sites, patients=patients, seed=seed, preset=preset)
    config = FederationConfig(workdir=str(workdir), num_rounds=rounds, seed=seed,
                              model_preset=preset, min_sites=min(2, n_sites))
    run_in_simulation(config, site_dirs)
    return "\n".join([
        format_run_summary(config.aggregator_dir, config.run_name),
        "",
        f"Demo finished in {time.monotonic() - started:.0f} s.",
        f"  results store:   {config.aggregator_dir / 'results.sqlite'}",
        f"  checkpoints:     {config.aggregator_dir / 'checkpoints' / config.run_name}",
        f"  site ledgers:    fedmpt privacy ledger {site_dirs[0]}",
        f"  dashboard:       fedmpt dashboard --workdir {workdir}   (or: make dashboard)",
    ])
