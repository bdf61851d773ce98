"""``make bench``: run every benchmark and write its JSON under benchmarks/results/."""

from __future__ import annotations

import importlib
import logging
import sys

BENCHMARKS = ("benchmarks.bench_training", "benchmarks.bench_federation", "benchmarks.bench_ingestion",
              "benchmarks.bench_pacs", "benchmarks.bench_privacy", "benchmarks.bench_diagnosis",
              "benchmarks.bench_experiment")


def main() -> int:
    """Run each benchmark module's ``main()``; return non-zero if any failed."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    failed = []
    for name in BENCHMARKS:
        logging.info("running %s", name)
        try:
            importlib.import_module(name).main()
        except Exception:  # report every benchmark, then fail
            logging.exception("%s failed", name)
            failed.append(name)
    if failed:
        logging.error("failed: %s", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
