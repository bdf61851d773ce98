"""The end-to-end baselines comparison (``fedmpt experiment compare --end-to-end``) at 40 patients per site.

Runs every arm (local-only per site, centralized, federated, federated with DP at each default
epsilon) on a fresh synthetic consortium in a temporary workdir, copies the reports
(``comparison.{csv,md,png}``, ``cross_site_matrix.{csv,png}``, written to ``WORKDIR/aggregator/reports/``
for the dashboard) to ``benchmarks/results/experiment/``
and writes ``benchmarks/results/experiment_compare.json``: the rows, the cross-site matrix, the
target checks, the settings, the wall time and the machine.

Usage: ``python -m benchmarks.bench_experiment [--workdir DIR]`` (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

from cli.experiment import EXPERIMENT_SITES
from experiments.demo import prepare_sites
from experiments.baselines import Experiment, ExperimentConfig, write_reports
from experiments.baselines.report import Comparison, target_checks

logger = logging.getLogger("benchmarks.bench_experiment")
RESULTS = Path(__file__).resolve().parent / "results"


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def comparison_result(comparison: Comparison, *, name: str, patients: int, seconds: float,
                      reports: list[Path], kept: Path) -> dict[str, Any]:
    """Copy ``reports`` to ``kept`` and return the JSON-ready result of one comparison."""
    kept.mkdir(parents=True, exist_ok=True)
    for report in reports:
        shutil.copy2(report, kept / report.name)
    return {
        "benchmark": name,
        "settings": {**comparison.settings, "patients_per_site": patients},
        "wall_seconds": round(seconds, 1),
        "rows": [{k: _finite(v) for k, v in row.items()} for row in comparison.rows],
        "cross_site_diag_auc_macro": [{"trained_at": a, "evaluated_at": b, "value": _finite(v)}
                                      for (a, b), v in comparison.cross_site.items()],
        "targets": target_checks(comparison.table()),
        "reports": [str(kept.relative_to(RESULTS.parent.parent) / p.name) for p in reports],
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads()},
    }


def run(workdir: Path, config: ExperimentConfig, *, sites: int = 3, patients: int = 40) -> dict[str, Any]:
    """Run the comparison in ``workdir`` and return the JSON-ready result."""
    site_dirs = prepare_sites(workdir, n_sites=sites, patients=patients, seed=config.seed,
                              preset=config.preset, folder=EXPERIMENT_SITES,
                              budgets=(max(config.epsilons) + 1.0,), allow_non_dp=True)
    started = time.perf_counter()
    comparison = Experiment(site_dirs, workdir / "aggregator" / "experiments", config).run()
    seconds = time.perf_counter() - started
    reports = write_reports(comparison, workdir / "aggregator" / "reports")  # for the dashboard
    return comparison_result(comparison, name="experiment_compare", patients=patients, seconds=seconds,
                             reports=reports, kept=RESULTS / "experiment")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run at the default size and write ``benchmarks/results/experiment_compare.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    return run_and_write("experiment_compare", args.workdir, lambda workdir: run(workdir, ExperimentConfig()))


def run_and_write(name: str, workdir: Path | None, job: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Run ``job`` in ``workdir`` (a temporary folder, removed afterwards, when None) and write its
    result to ``benchmarks/results/NAME.json``."""
    folder = workdir or Path(tempfile.mkdtemp(prefix=f"fedmpt-{name}-"))
    try:
        result = job(folder)
    finally:
        if workdir is None:
            shutil.rmtree(folder, ignore_errors=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    logger.info("wrote %s", path)
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    main()
