"""``fedmpt audit``: privacy audits of a run's released model (membership inference)."""

from __future__ import annotations

from pathlib import Path

import typer

audit_app = typer.Typer(help="Privacy audits of released models (membership inference).",
                        no_args_is_help=True)


@audit_app.command("mia")
def audit_mia(
    workdir: Path = typer.Option(..., "--workdir", help="Workdir holding aggregator/ (store, checkpoints)."),
    run: str = typer.Option("", "--run", help="Run id (default: the newest completed run)."),
    site: list[Path] = typer.Option(
        None, "--site", help="A site directory to audit; repeat it (default: WORKDIR/sites/*)."),
    draws: int = typer.Option(4, help="Fixed mask draws averaged per patient."),
    seed: int = typer.Option(0, help="Seed of the fixed masks."),
    threads: int = typer.Option(0, help="torch threads (0: torch's default); keep <= free cores."),
    aggregator_key: Path = typer.Option(
        None, "--aggregator-key", help="Aggregator public key to verify the checkpoint with "
        "(default: WORKDIR/aggregator/keys/*.pub when present)."),
) -> None:
    """Membership-inference AUC of the run's latest global model at each site, with its epsilon.

    Members are each site's train-split patients, non-members its held-out patients; only
    the per-site AUCs leave the sites. Writes WORKDIR/aggregator/reports/mia.json.
    """
    import torch

    from experiments.mia_audit import audit_run, write_report

    if threads > 0:
        torch.set_num_threads(threads)
    report = audit_run(workdir, run=run or None, site_dirs=list(site) if site else None,
                       seed=seed, draws=draws, aggregator_key=aggregator_key)
    path = write_report(workdir, report)
    typer.echo(f"run {report['run']} (round {report['round']}, {'DP' if report['dp'] else 'no DP'})")
    typer.echo(f"{'site':16} {'AUC':>6} {'AUC cal':>8} {'AUC init':>9} {'null sd':>8} {'members':>8} "
               f"{'held out':>9} {'epsilon':>8}")
    for name, r in report["sites"].items():
        eps = "none" if r["epsilon"] is None else f"{r['epsilon']:.3f}"
        typer.echo(f"{name:16} {r['auc']:>6.3f} {r['auc_calibrated']:>8.3f} {r['auc_untrained']:>9.3f} "
                   f"{r['auc_null_std']:>8.3f} {r['members']:>8} {r['non_members']:>9} {eps:>8}")
    typer.echo(f"wrote {path}")
