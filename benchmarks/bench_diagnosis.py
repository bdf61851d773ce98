"""The diagnosis benchmark at ``fedmpt experiment compare``'s default size.

Every arm (local-only and federated, with and without DP at each epsilon, centralized, the
densitometry-only floor) trains the DP diagnosis head on the frozen encoder's embedding plus the
parameter-free densitometry of 3 synthetic hospitals x 200 patients (150 training, 50 held out),
and is scored on each site's held-out patients and on a fourth hospital no arm trained on, with
95% bootstrap intervals. Copies the reports to ``benchmarks/results/diagnosis/`` and writes
``benchmarks/results/diagnosis.json`` (rows, targets, settings, wall time, machine and load).

Usage: ``python -m benchmarks.bench_diagnosis [--workdir DIR] [--patients N]``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_experiment import RESULTS, comparison_result, run_and_write
from cli.experiment import DEFAULT_PATIENTS, EXPERIMENT_SITES
from experiments.baselines import write_reports
from experiments.baselines.diagnosis import DiagnosisBenchmarkConfig, run_diagnosis_benchmark
from experiments.baselines.head_arms import HeadTraining

logger = logging.getLogger("benchmarks.bench_diagnosis")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run at the default size and write ``benchmarks/results/diagnosis.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--patients", type=int, default=DEFAULT_PATIENTS)
    args = parser.parse_args(argv)
    config = DiagnosisBenchmarkConfig(training=HeadTraining(delta=min(1e-4, 0.1 / args.patients)))

    def job(workdir: Path) -> dict[str, Any]:
        started = time.perf_counter()
        comparison = run_diagnosis_benchmark(workdir, sites=3, patients=args.patients, seed=0, preset="demo",
                                             folder=EXPERIMENT_SITES, config=config,
                                             on_arm=lambda arm: logger.info("arm: %s", arm))
        seconds = time.perf_counter() - started
        reports = write_reports(comparison, workdir / "aggregator" / "reports")
        return comparison_result(comparison, name="diagnosis", patients=args.patients, seconds=seconds,
                                 reports=reports, kept=RESULTS / "diagnosis")

    return run_and_write("diagnosis", args.workdir, job)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    main()
