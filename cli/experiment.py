"""``fedmpt experiment compare``: the baselines of the consortium's question, on synthetic data."""

from __future__ import annotations

from pathlib import Path

import typer

experiment_app = typer.Typer(help="Experiments on the synthetic consortium (baselines).",
                             no_args_is_help=True)

EXPERIMENT_SITES = "experiment-sites"

DEFAULT_PATIENTS = 200
"""Patients per hospital of the default comparison: 150 training and 50 held out per site, so a
macro-AUC's 95% interval is about +/- 0.05."""


def _epsilons(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"--epsilons must be comma-separated numbers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise typer.BadParameter(f"--epsilons needs at least one positive epsilon, got {text!r}")
    return values


@experiment_app.command("compare")
def compare(
    workdir: Path = typer.Option(..., "--workdir", help="Workdir; reports go to WORKDIR/aggregator/reports."),
    sites: int = typer.Option(3, help="Synthetic hospitals."),
    patients: int = typer.Option(
        DEFAULT_PATIENTS, min=8, max=2000,
        help="Patients per hospital (about 25% held out; the external hospital gets as many)."),
    preset: str = typer.Option("demo", help="Model preset."),
    matrix: int = typer.Option(128, help="In-plane matrix of the generated CT slices (64 suffices for tiny)."),
    public_patients: int = typer.Option(60, min=2, help="Public phantoms the feature statistics come from."),
    rounds: int = typer.Option(3, help="--end-to-end: federated rounds (local-only: as many local rounds)."),
    local_steps: int = typer.Option(30, help="--end-to-end: optimizer steps per site and round."),
    batch_size: int = typer.Option(8, help="--end-to-end: (expected) patients per batch."),
    lr: float = typer.Option(3e-3, help="--end-to-end: AdamW learning rate."),
    epsilons: str = typer.Option("1,4,8", help="Target epsilons of the DP arms, comma-separated."),
    end_to_end: bool = typer.Option(
        False, "--end-to-end",
        help="Train the whole clinical model in every arm through the sites' runtimes (all "
             "downstream metrics; slow: size it with --patients 40) instead of the frozen-encoder "
             "DP heads of the diagnosis benchmark."),
    seed: int = typer.Option(0, help="Seed of the consortium, split and initial weights (DP noise is drawn at each site)."),
    init_checkpoint: Path = typer.Option(
        None, "--init-checkpoint", help="Pretrained weights every arm starts from (default: fresh)."),
    ssl_probe_rounds: int = typer.Option(
        0, "--ssl-probe-rounds", min=0,
        help="Also run this many rounds of federated DP SSL (make demo's settings; it spends the "
             "training sites' budgets) and score the linear probe of the encoder's embedding "
             "before and after them (arms probe-initial-encoder*, probe-ssl-encoder*)."),
) -> None:
    """Local-only per site (without DP and at each epsilon), centralized, federated without DP and at each epsilon.

    Generates and ingests a synthetic consortium in WORKDIR/experiment-sites (sites that allow
    training without DP, for the baselines) unless it is there, runs every arm on the same split
    and seeds, and writes comparison.{csv,md,png} and cross_site_matrix.{csv,png}. By default
    (the diagnosis benchmark) the encoder is frozen and each arm trains the DP diagnosis head;
    every arm is also scored on an external hospital no arm trained on, with 95% bootstrap CIs.
    """
    from experiments.demo import prepare_sites
    from experiments.baselines import Experiment, ExperimentConfig, write_reports
    from aggregator.signing import load_or_create_signing_key
    from federation.config import FederationConfig
    from federation.init_weights import load_init_state

    init_state = None
    if init_checkpoint:
        key = load_or_create_signing_key(FederationConfig(workdir=str(workdir)).signing_key_path)
        init_state = load_init_state(init_checkpoint, public_key=key.public_key())
    if end_to_end and ssl_probe_rounds:
        from cli.errors import BadValue

        raise BadValue("--ssl-probe-rounds belongs to the diagnosis benchmark, not --end-to-end",
                       "drop --end-to-end, or run the probe without it")
    if not end_to_end:
        from experiments.baselines.diagnosis import DiagnosisBenchmarkConfig, run_diagnosis_benchmark
        from experiments.baselines.head_arms import HeadTraining

        bench = DiagnosisBenchmarkConfig(epsilons=_epsilons(epsilons),
                                         training=HeadTraining(delta=min(1e-4, 0.1 / patients)))
        comparison = run_diagnosis_benchmark(
            workdir, sites=sites, patients=patients, seed=seed, preset=preset, folder=EXPERIMENT_SITES,
            config=bench, init_state=init_state, on_arm=lambda arm: typer.echo(f"arm: {arm}"),
            ssl_rounds=ssl_probe_rounds, matrix=matrix, public_patients=public_patients)
        for path in write_reports(comparison, workdir / "aggregator" / "reports"):
            typer.echo(f"wrote {path}")
        return
    config = ExperimentConfig(preset=preset, rounds=rounds, local_steps=local_steps,
                              batch_size=batch_size, lr=lr, epsilons=_epsilons(epsilons), seed=seed)
    site_dirs = prepare_sites(workdir, n_sites=sites, patients=patients, seed=seed, preset=preset,
                              folder=EXPERIMENT_SITES, budgets=(max(config.epsilons) + 1.0,),
                              allow_non_dp=True)
    experiment = Experiment(site_dirs, workdir / "aggregator" / "experiments", config, init_state)
    comparison = experiment.run(on_arm=lambda arm: typer.echo(f"arm: {arm}"))
    for path in write_reports(comparison, workdir / "aggregator" / "reports"):
        typer.echo(f"wrote {path}")


@experiment_app.command("finetune-init")
def finetune_init(
    pretrained: Path = typer.Argument(..., help="A (signed) pretraining round checkpoint of WORKDIR."),
    workdir: Path = typer.Option(..., "--workdir", help="The aggregator's workdir (its key signs the result)."),
    preset: str = typer.Option("demo", help="Model preset of the run."),
    seed: int = typer.Option(0, help="Seed of the heads' initialisation and of the public phantoms (seed + 7919)."),
    public_patients: int = typer.Option(60, min=2, help="Public phantoms the statistics come from."),
) -> None:
    """Write the signed starting point of a fine-tuning run: the pretrained backbone, fresh heads and
    the heads' feature standardisation computed from public synthetic phantoms (no site's data)."""
    from experiments.public_init import write_finetune_init
    from federation.config import FederationConfig

    if not pretrained.is_file():
        raise typer.BadParameter(f"{pretrained} does not exist; pass a round checkpoint of a pretraining run")
    config = FederationConfig(workdir=str(workdir))
    path = write_finetune_init(pretrained, config.aggregator_dir / "init", workdir=workdir, seed=seed,
                               preset=preset, signing_key=config.signing_key_path, public_patients=public_patients)
    typer.echo(f"wrote {path} (use it as --init-checkpoint of `fedmpt federate --task finetune`)")
