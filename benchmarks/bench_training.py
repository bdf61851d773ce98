"""Throughput of ``train_locally`` with and without DP-SGD, per Opacus grad_sample_mode.

Builds a synthetic ingestion cache (random volumes, English/Chinese reports) of ``--patients``
patients in a temporary directory, then times ``train_locally`` on the default ``ModelConfig``:
non-DP (fixed batches) and DP-SGD (Poisson batches of the same expected size) in each mode,
interleaved over ``--repeats`` rounds so host-load drift hits every variant alike. Ratios are
reported for the best run of each variant (the least disturbed one) and for medians, in
wall-clock samples/s and in samples per CPU-second of this process. On a loaded shared host
(load average well above the core count) only the CPU-time figures are meaningful, and
``--threads 1`` keeps them free of OpenMP spin-waiting; the fastest mode is chosen on CPU time.
Writes
``benchmarks/results/training_throughput.json`` (one entry per ``--threads`` value, entries of
other thread counts already in the file are kept).

Usage: ``python benchmarks/bench_training.py [--threads 2] [--repeats 5] [--steps 2]``
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from client_site.datasets import PatientDataset, load_cache_index
from client_site.model import MedMPT, ModelConfig
from client_site.tokenizer import ReportTokenizer
from client_site.training import TrainConfig, train_locally
from privacy.dp_training import DEFAULT_GRAD_SAMPLE_MODE, GRAD_SAMPLE_MODES

logger = logging.getLogger("bench_training")
RESULTS = Path(__file__).resolve().parent / "results" / "training_throughput.json"
TARGET_RATIO = 0.75
EN = ["FINDINGS: {n} mm nodule in the {lobe}. No pleural effusion. IMPRESSION: pulmonary nodule.",
      "FINDINGS: Patchy ground-glass opacity in the {lobe}. IMPRESSION: suspected infection.",
      "FINDINGS: Lungs are clear. IMPRESSION: no acute abnormality."]
ZH = ["检查所见：{lobe}见一{n}毫米结节，边界清楚。诊断意见：肺结节。",
      "检查所见：双肺纹理增多，{lobe}见斑片状磨玻璃影。诊断意见：考虑感染。",
      "检查所见：双肺未见明显异常。诊断意见：未见异常。"]
LOBES = ["right upper lobe", "left lower lobe", "right middle lobe"]


def write_synthetic_cache(root: Path, n_patients: int, cfg: ModelConfig, seed: int = 0) -> Path:
    """Cache per ``docs/contracts.md`` section 4; every 4th patient has 2 studies, 1 in 8 studies no report."""
    rng = np.random.default_rng(seed)
    cache = root / "cache"
    (cache / "volumes").mkdir(parents=True)
    studies = []
    for p in range(n_patients):
        for s in range(2 if p % 4 == 0 else 1):
            key = f"s{p:04d}{s}"
            shape = (cfg.in_windows, cfg.num_slices, cfg.image_size, cfg.image_size)
            np.save(cache / "volumes" / f"{key}.npy", rng.random(shape).astype(np.float16))
            zh = bool(rng.random() < 0.5)
            template = (ZH if zh else EN)[int(rng.integers(3))]
            report = None if rng.random() < 0.125 else template.format(
                n=int(rng.integers(3, 15)), lobe=LOBES[int(rng.integers(3))])
            studies.append({"study_key": key, "patient_key": f"p{p:04d}", "volume": f"volumes/{key}.npy",
                            "report": report, "language": None if report is None else ("zh" if zh else "en"),
                            "clinical": None})
    (cache / "index.json").write_text(json.dumps({"preprocess": {}, "studies": studies}, ensure_ascii=False),
                                      encoding="utf-8")
    return cache


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (``argv`` defaults to the command line)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32, help="(expected) batch size")
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modes", default=",".join(GRAD_SAMPLE_MODES))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", force=True)
    logging.getLogger("client_site").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="Secure RNG turned off")
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    warnings.filterwarnings("ignore", message="In CPU autocast")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # tiny Adam moments turn denormal and make sqrt ~50x slower
    try:
        _measure(args)
    finally:  # benchmarks/run_all.py runs other benchmarks in this process afterwards
        torch.set_num_threads(threads_before)
        torch.set_flush_denormal(False)


def _measure(args: argparse.Namespace) -> None:
    """Time every variant and write the JSON report."""
    load_before = list(os.getloadavg())
    cfg = ModelConfig()
    modes = [m for m in args.modes.split(",") if m]
    variants = ["non_dp"] + [f"dp_{m}" for m in modes]
    runs: dict[str, list[float]] = {v: [] for v in variants}
    cpu_runs: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        cache = write_synthetic_cache(Path(tmp), args.patients, cfg)
        keys = sorted({r.patient_key for r in load_cache_index(cache)})
        dataset = PatientDataset(cache, keys, ReportTokenizer(), max_len=cfg.text_max_len, seed=0,
                                 cache_size=2 * args.patients)
        torch.manual_seed(0)
        initial = MedMPT(cfg)

        def run(variant: str, steps: int) -> tuple[float, float]:
            """(samples per wall second, samples per CPU second of this process)."""
            mode = variant.removeprefix("dp_")
            train_cfg = TrainConfig(local_steps=steps, expected_batch_size=args.batch, seed=1,
                                    dp=variant != "non_dp",
                                    grad_sample_mode=mode if mode in GRAD_SAMPLE_MODES else DEFAULT_GRAD_SAMPLE_MODE)
            metrics = train_locally(copy.deepcopy(initial), dataset, train_cfg).metrics
            samples = metrics["samples_per_s"] * metrics["seconds"]
            return metrics["samples_per_s"], samples / metrics["cpu_seconds"]

        for variant in variants:  # warm-up: volume cache, allocator, lazy Opacus/functorch set-up
            logger.info("warm-up %-13s %.2f samples/s", variant, run(variant, 1)[0])
        for r in range(args.repeats):
            for variant in variants:
                wall, cpu = run(variant, args.steps)
                runs[variant].append(wall)
                cpu_runs[variant].append(cpu)
                logger.info("repeat %d %-13s %.2f samples/s (%.2f per CPU-s)", r, variant, wall, cpu)

    def summary(values: list[float], base: list[float]) -> dict[str, object]:
        return {"best": max(values), "median": statistics.median(values), "runs": values,
                "ratio_best": max(values) / max(base),
                "ratio_median": statistics.median(values) / statistics.median(base)}

    results = {v: {"samples_per_s": summary(runs[v], runs["non_dp"]),
                   "samples_per_cpu_s": summary(cpu_runs[v], cpu_runs["non_dp"])} for v in variants}
    # Chosen on CPU time: on a shared host wall-clock ranks reflect the scheduler, not the mode.
    fastest = max(modes, key=lambda m: max(cpu_runs[f"dp_{m}"])) if modes else None
    run_report = {
        "torch_threads": torch.get_num_threads(),
        "load_average_before": load_before, "load_average_after": list(os.getloadavg()),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "repeats": args.repeats, "steps_per_run": args.steps,
        "results": results,
        "fastest_dp_mode": fastest,
        "default_is_fastest": fastest == DEFAULT_GRAD_SAMPLE_MODE,
        "best_ratio": max(runs[f"dp_{fastest}"]) / max(runs["non_dp"]) if fastest else None,
        "best_ratio_cpu_time": max(cpu_runs[f"dp_{fastest}"]) / max(cpu_runs["non_dp"]) if fastest else None,
    }
    previous = json.loads(args.out.read_text(encoding="utf-8")) if args.out.exists() else {}
    by_threads = previous.get("by_threads", {}) if isinstance(previous, dict) else {}
    by_threads[str(args.threads)] = run_report  # keep runs made with other thread counts
    report = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "opacus": __import__("opacus").__version__},
        "setup": {"model_config": cfg.__dict__, "parameters": sum(p.numel() for p in initial.parameters()),
                  "patients": args.patients, "expected_batch_size": args.batch, "optimizer": "AdamW",
                  "flush_denormal": True,
                  "timed": "train_locally samples/s (data loading, masks, fwd/bwd, clipping, noise, step)"},
        "default_grad_sample_mode": DEFAULT_GRAD_SAMPLE_MODE,
        "target_ratio": TARGET_RATIO,
        "by_threads": dict(sorted(by_threads.items())),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for v in variants:
        wall, cpu = results[v]["samples_per_s"], results[v]["samples_per_cpu_s"]
        logger.info("%-13s best %.2f samples/s  ratio best %.2f / median %.2f  (CPU-time %.2f / %.2f)",
                    v, wall["best"], wall["ratio_best"], wall["ratio_median"], cpu["ratio_best"],
                    cpu["ratio_median"])
    logger.info("fastest DP mode: %s (default %s); wrote %s", fastest, DEFAULT_GRAD_SAMPLE_MODE, args.out)


if __name__ == "__main__":
    main()
