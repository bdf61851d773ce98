"""Membership-inference AUC of the released global model at epsilon 1, 4, 8 and without DP.

Generates a small synthetic consortium (``--sites`` hospitals x ``--patients`` patients,
ingested to the ``--preset`` grid) once, then for each setting runs a federated job on
Flower's simulation engine on fresh copies of the sites (so each starts with an empty
ledger and a budget equal to the target), with the noise multiplier that Opacus' solver
(:func:`privacy.planning.noise_for_target`) picks for ``rounds x local_steps`` steps at the
sites' sampling rate. The no-DP run uses ``allow_non_dp = true`` in every site.toml. Each
run's latest global model is then audited at each site (:mod:`experiments.mia_audit`):
loss attack and reference-calibrated attack, members = train split, non-members = held out.

Target: AUC <= 0.6 at epsilon <= 8. Small sites give noisy AUCs; the report lists
the standard deviation of a useless attack's AUC (``auc_null_std``) next to every number.
Writes ``benchmarks/results/privacy.json``.

Usage: ``python -m benchmarks.bench_privacy [--sites 3] [--patients 60] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from client_site.datasets import load_cache_index, split_patients
from client_site.layout import SiteLayout
from client_site.site_config import SITE_CONFIG, write_site_config
from federation.config import FederationConfig
from federation.log_setup import configure_logging
from experiments.mia_audit import audit_run, write_report
from federation.presets import get_preset
from federation.simulation import run_in_simulation
from privacy.planning import noise_for_target

logger = logging.getLogger("benchmarks.bench_privacy")
RESULTS = Path(__file__).resolve().parent / "results" / "privacy.json"
EPSILONS: tuple[float | None, ...] = (1.0, 4.0, 8.0, None)  # None = no DP
TARGET_AUC = 0.6
DELTA = 1e-5


def _prepare_consortium(root: Path, *, sites: int, patients: int, seed: int, preset: str) -> list[Path]:
    from client_site.ingestion import ingest_site
    from synthetic import generate_consortium

    site_dirs = generate_consortium(root, n_sites=sites, patients_per_site=patients, seed=seed,
                                    matrix=64, progress=False)
    for site_dir in site_dirs:
        ingest_site(site_dir, SiteLayout(site_dir).cache_dir, config=get_preset(preset).preprocess,
                    progress=False)
    return site_dirs


def _fresh_sites(base: list[Path], dest: Path, *, epsilon: float | None) -> list[Path]:
    """Copies of the ingested sites with an empty ledger and the setting's own site.toml."""
    out = []
    for site_dir in base:
        copy = dest / site_dir.name
        shutil.copytree(site_dir, copy, ignore=shutil.ignore_patterns("privacy", SITE_CONFIG, "dicom"))
        write_site_config(copy, name=site_dir.name, epsilon=epsilon or 1.0, delta=DELTA)
        if epsilon is None:  # baseline without DP: the site has to opt in itself
            path = copy / SITE_CONFIG
            path.write_text(path.read_text().replace("allow_non_dp = false", "allow_non_dp = true"))
        out.append(copy)
    return out


def _train_patients(site_dir: Path) -> int:
    keys = {s.patient_key for s in load_cache_index(SiteLayout(site_dir).cache_dir)}
    return len(split_patients(keys)[0])


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    sites = report["sites"].values()
    aucs = [s["auc"] for s in sites]
    cal = [s["auc_calibrated"] for s in sites]
    untrained = [s["auc_untrained"] for s in sites]
    null = [s["auc_null_std"] for s in sites]
    eps = [s["epsilon"] for s in sites]
    return {
        "auc_mean": statistics.fmean(aucs), "auc_max": max(aucs),
        "auc_calibrated_mean": statistics.fmean(cal), "auc_calibrated_max": max(cal),
        "auc_untrained_mean": statistics.fmean(untrained),
        # std of the mean of independent useless-attack AUCs, one per site
        "auc_mean_null_std": math.sqrt(sum(n * n for n in null)) / len(null),
        "epsilon_max": None if None in eps else max(eps),
    }


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write ``benchmarks/results/privacy.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--patients", type=int, default=60,
                        help="patients per site (60: 15 held out per site, chance-level AUC std 0.09 per site)")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--local-steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8, help="expected Poisson batch (patients)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draws", type=int, default=4, help="mask draws per patient in the audit")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the audit (more than the free cores is much slower)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    configure_logging()  # our packages at INFO (flwr may already own the root handler)
    torch.set_num_threads(args.threads)
    started, load_before = time.monotonic(), list(os.getloadavg())

    rows = []
    with tempfile.TemporaryDirectory(prefix="fedmpt-bench-privacy-") as tmp:
        root = Path(tmp)
        t0 = time.monotonic()
        base = _prepare_consortium(root / "base", sites=args.sites, patients=args.patients,
                                   seed=args.seed, preset=args.preset)
        prepare_s = time.monotonic() - t0
        sample_rate = max(min(args.batch / _train_patients(d), 1.0) for d in base)
        for epsilon in EPSILONS:
            name = "no-dp" if epsilon is None else f"eps-{epsilon:g}"
            workdir = root / name
            site_dirs = _fresh_sites(base, workdir / "sites", epsilon=epsilon)
            sigma, planned = (0.0, None) if epsilon is None else noise_for_target(
                target_epsilon=epsilon, delta=DELTA, sample_rate=sample_rate, rounds=args.rounds,
                local_steps=args.local_steps)
            config = FederationConfig(
                workdir=str(workdir), run_name=name, num_rounds=args.rounds, min_sites=len(site_dirs),
                local_steps=args.local_steps, expected_batch_size=args.batch, lr=args.lr,
                noise_multiplier=sigma if epsilon is not None else 1.0, dp=epsilon is not None,
                model_preset=args.preset, seed=args.seed,
            )
            t0 = time.monotonic()
            run_in_simulation(config, site_dirs)
            train_s = time.monotonic() - t0
            t0 = time.monotonic()
            report = audit_run(workdir, run=name, site_dirs=site_dirs, seed=args.seed, draws=args.draws)
            write_report(workdir, report)
            audit_s = time.monotonic() - t0
            row = {"setting": name, "target_epsilon": epsilon, "noise_multiplier": sigma or None,
                   "planned_epsilon": planned, "sites": report["sites"], **_summary(report),
                   "train_seconds": train_s, "audit_seconds": audit_s}
            if epsilon is not None:  # on the mean over sites, and at every site (noisier)
                row["meets_target"] = max(row["auc_mean"], row["auc_calibrated_mean"]) <= TARGET_AUC
                row["meets_target_every_site"] = max(row["auc_max"], row["auc_calibrated_max"]) <= TARGET_AUC
            rows.append(row)
            logger.info("%s: sigma %s, AUC mean %.3f (max %.3f), calibrated mean %.3f (max %.3f), "
                        "untrained-model mean %.3f, null sd of the mean %.3f, %.0f s training", name,
                        sigma or "-", row["auc_mean"], row["auc_max"], row["auc_calibrated_mean"],
                        row["auc_calibrated_max"], row["auc_untrained_mean"], row["auc_mean_null_std"],
                        train_s)

    report_out = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "opacus": __import__("opacus").__version__,
                    "flwr": __import__("flwr").__version__, "device": "cpu",
                    "load_average_before": load_before, "load_average_after": list(os.getloadavg())},
        "setup": {"sites": args.sites, "patients_per_site": args.patients, "matrix": 64,
                  "preset": args.preset, "rounds": args.rounds, "local_steps": args.local_steps,
                  "expected_batch_size": args.batch, "lr": args.lr, "seed": args.seed,
                  "delta": DELTA, "sample_rate": sample_rate, "accountant": "rdp",
                  "audit_draws": args.draws, "audit_threads": args.threads, "members": "train-split patients of each site",
                  "non_members": "held-out patients of each site", "prepare_seconds": prepare_s},
        "target": {"auc_at_most": TARGET_AUC, "for_epsilon_at_most": 8.0,
                   "meets_target": "mean over sites of each attack's AUC <= target",
                   "meets_target_every_site": "every site's AUC of both attacks <= target"},
        "results": rows,
        "all_dp_settings_meet_target": all(r["meets_target"] for r in rows if "meets_target" in r),
        "total_seconds": time.monotonic() - started,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report_out, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s in %.0f s", args.out, report_out["total_seconds"])


if __name__ == "__main__":
    main()
