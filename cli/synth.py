"""``fedmpt synth``: write the synthetic consortium (the embedded default's data)."""

from __future__ import annotations

from pathlib import Path

import typer


def synth(
    out: Path = typer.Argument(..., help="Folder to write one site directory per hospital into."),
    sites: int = typer.Option(3, help="Number of hospitals."),
    patients: int = typer.Option(40, help="Patients per hospital."),
    seed: int = typer.Option(0, help="Seed; the same seed gives the same consortium."),
    matrix: int = typer.Option(128, help="In-plane matrix of the generated CT slices."),
) -> None:
    """Generate the synthetic multi-center consortium (DICOM series, reports, records, truth)."""
    from synthetic import generate_consortium

    for site_dir in generate_consortium(out, n_sites=sites, patients_per_site=patients,
                                        seed=seed, matrix=matrix):
        typer.echo(f"wrote {site_dir}")
