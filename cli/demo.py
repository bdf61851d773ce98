"""``fedmpt demo``: the whole job end to end on the synthetic consortium."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    workdir: Path = typer.Option(Path("fedmpt-demo"), help="Where the consortium and results go."),
    sites: int = typer.Option(3, help="Hospitals in the synthetic consortium."),
    patients: int = typer.Option(60, help="Patients per hospital."),
    rounds: int = typer.Option(3, help="Federated pretraining rounds."),
    finetune_rounds: int = typer.Option(2, help="Federated fine-tuning rounds that follow."),
    seed: int = typer.Option(0, help="Seed of the consortium and of the run."),
    preset: str = typer.Option("demo", help="Model preset: demo, or tiny for a quick check of the whole chain."),
    matrix: int = typer.Option(128, help="In-plane matrix of the generated CT slices (64 suffices for tiny)."),
    public_patients: int = typer.Option(60, min=2, help="Public phantoms the fine-tuning's feature statistics come from."),
) -> None:
    """End to end on the synthetic consortium: synth, ingest, federated DP pretraining and
    fine-tuning with validation at every site, then drafts at each site."""
    from experiments.demo import run_demo

    typer.echo(run_demo(workdir, n_sites=sites, patients=patients, rounds=rounds,
                        finetune_rounds=finetune_rounds, seed=seed, preset=preset, matrix=matrix,
                        public_patients=public_patients))
