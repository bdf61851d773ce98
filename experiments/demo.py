"""``fedmpt demo``: the whole job on the embedded synthetic consortium, end to end."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from client_site.layout import SiteLayout
from client_site.site_config import SITE_CONFIG, load_site_config, write_site_config
from client_site.tasks import FINETUNE
from federation.config import FederationConfig
from federation.presets import get_preset
from experiments.public_init import PUBLIC_PATIENTS
from experiments.summary import format_run_summary, format_scorecards
from federation.simulation import run_in_simulation
from privacy.ledger import PrivacyLedger
from privacy.planning import noise_within_budget

logger = logging.getLogger(__name__)

# Each hospital sets its own budget; the third one accepts less, so it sits out the fine-tuning
# rather than cross its budget -- the refusal shows up in the dashboard.
DEMO_BUDGETS = (10.0, 12.0, 5.5)
DEMO_DELTA = 1e-5
DRAFTS_PER_SITE = 4
FINETUNE_EPSILON = 8.0
"""What the fine-tuning alone spends at most at a site that takes part in all its rounds (the
benchmark's epsilon); the pretraining's share comes on top, within each site's budget."""
FINETUNE_UPDATE_BOUND = 100.0
"""L2 bound of a site's fine-tuning update: full-batch steps at rate 1 move the small heads
further than the SSL default bound allows (the aggregator's norm test still applies)."""


def prepare_sites(
    workdir: Path, *, n_sites: int, patients: int, seed: int, preset: str,
    folder: str = "sites", budgets: tuple[float, ...] = DEMO_BUDGETS, allow_non_dp: bool = False,
    matrix: int = 128,
) -> list[Path]:
    """Generate (once), configure and ingest (with data QA) the synthetic sites under ``workdir/folder``.

    Site ``i`` gets the budget ``budgets[i % len(budgets)]``; ``allow_non_dp`` is for baselines;
    ``matrix`` is the in-plane matrix of the generated CT slices.
    """
    from client_site.ingestion import ingest_site
    from synthetic import generate_consortium, site_names

    sites_root = workdir / folder
    names = site_names(n_sites)
    site_dirs = [sites_root / name for name in names]
    # The drug table is the last file the generator writes: a site without it was interrupted.
    if not all((d / "reference" / "drug_interactions.csv").is_file() for d in site_dirs):
        logger.info("generating %d synthetic hospitals x %d patients", n_sites, patients)
        generate_consortium(sites_root, n_sites=n_sites, patients_per_site=patients, seed=seed, matrix=matrix)
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
    patients: int = 60,
    rounds: int = 3,
    finetune_rounds: int = 2,
    seed: int = 0,
    preset: str = "demo",
    matrix: int = 128,
    public_patients: int = PUBLIC_PATIENTS,
) -> str:
    """Run the demo and return the text to print: per-site tables and where to look.

    Federated DP pretraining (SSL) for ``rounds``, then federated DP fine-tuning of the clinical
    heads for ``finetune_rounds`` from its last checkpoint (the diagnosis benchmark's recipe,
    :func:`finetune_from`), validated at every site each round; then each site drafts a few
    reports with the model it kept, for the case viewer, and scores it on its held-out patients
    (95% bootstrap CIs).
    """
    started = time.monotonic()
    workdir = Path(workdir)
    get_preset(preset)  # an unknown preset fails here, not after the consortium is generated
    site_dirs = prepare_sites(workdir, n_sites=n_sites, patients=patients, seed=seed, preset=preset,
                              matrix=matrix)
    config = FederationConfig(workdir=str(workdir), num_rounds=rounds, seed=seed,
                              model_preset=preset, min_sites=min(2, n_sites))
    run_in_simulation(config, site_dirs)
    finetune = finetune_from(config, rounds=finetune_rounds, patients=patients, planned_for=site_dirs[0],
                             public_patients=public_patients)
    run_in_simulation(finetune, site_dirs)
    draft_examples(site_dirs, per_site=DRAFTS_PER_SITE)
    return "\n".join([
        format_run_summary(config.aggregator_dir, config.run_name),
        "",
        format_run_summary(finetune.aggregator_dir, finetune.run_name),
        "",
        format_scorecards(site_dirs, _last_checkpoint(finetune)),
        "",
        f"Demo finished in {time.monotonic() - started:.0f} s.",
        f"  results store:   {config.aggregator_dir / 'results.sqlite'}",
        f"  checkpoints:     {config.checkpoint_dir} (pretraining), {finetune.checkpoint_dir}",
        f"  site ledgers:    fedmpt privacy ledger {site_dirs[0]}",
        f"  drafts:          fedmpt dashboard --site {site_dirs[0]}   (case viewer of one hospital)",
        f"  dashboard:       fedmpt dashboard --workdir {workdir}   (or: make dashboard)",
    ])


def finetune_from(pretraining: FederationConfig, *, rounds: int, patients: int,
                  planned_for: Path, public_patients: int = PUBLIC_PATIENTS) -> FederationConfig:
    """A federated DP fine-tuning run of the heads, started from ``pretraining``'s last checkpoint.

    The diagnosis benchmark's recipe (:class:`~experiments.baselines.head_arms.HeadTraining`):
    its total of full-batch steps (split over ``rounds``), plain SGD at its rate, its clipping
    norm; sample rate 1 (the expected batch is every site's ``patients``). The noise is the
    larger of the benchmark's at :data:`FINETUNE_EPSILON` and the smallest that keeps the site
    ``planned_for`` (after its pretraining) within its budget through every round. The starting
    point carries the public standardisation computed with the pretrained backbone
    (:func:`~experiments.public_init.write_finetune_init`, from ``public_patients`` phantoms).
    """
    from experiments.baselines.head_arms import HeadTraining
    from experiments.public_init import write_finetune_init

    checkpoint = _last_checkpoint(pretraining)
    run_name = f"{pretraining.run_name}-finetune"
    init = write_finetune_init(checkpoint, pretraining.aggregator_dir / "init", workdir=Path(pretraining.workdir),
                               seed=pretraining.seed, preset=pretraining.model_preset,
                               signing_key=pretraining.signing_key_path, public_patients=public_patients)
    recipe = replace(HeadTraining(), rounds=rounds,
                     local_steps=max(1, round(HeadTraining().total_steps / rounds)), delta=DEMO_DELTA)
    site = load_site_config(planned_for)
    spent = PrivacyLedger(SiteLayout(planned_for).ledger_path, mechanism=site.accountant).accountant.history
    noise = max(recipe.noise_for(FINETUNE_EPSILON),
                noise_within_budget(spent, budget_epsilon=site.budget.epsilon, delta=site.budget.delta,
                                    sample_rate=1.0, steps=recipe.total_steps, mechanism=site.accountant))
    logger.info("fine-tuning: %d rounds x %d full-batch SGD steps, lr %g, clip %g, noise %.3f",
                rounds, recipe.local_steps, recipe.lr, recipe.max_grad_norm, noise)
    return replace(pretraining, run_name=run_name, num_rounds=rounds, task=FINETUNE,
                   init_checkpoint=str(init), local_steps=recipe.local_steps, lr=recipe.lr,
                   max_grad_norm=recipe.max_grad_norm, optimizer="sgd", expected_batch_size=patients,
                   noise_multiplier=noise, update_norm_bound=FINETUNE_UPDATE_BOUND)


def _last_checkpoint(run: FederationConfig) -> Path:
    from aggregator.checkpoints import latest_checkpoint

    checkpoint = latest_checkpoint(run.checkpoint_dir)
    if checkpoint is None:
        raise RuntimeError(f"run {run.run_name} left no checkpoint in {run.checkpoint_dir}")
    return checkpoint


def draft_examples(site_dirs: list[Path], *, per_site: int) -> None:
    """Each hospital drafts its first studies with the fine-tuned model it kept (the case viewer's content)."""
    from cli.report import report_draft

    for site_dir in site_dirs:
        report_draft(site=site_dir, study="", all_studies=True, limit=per_site, model=None, preset="",
                     threshold=None, as_json=False)
