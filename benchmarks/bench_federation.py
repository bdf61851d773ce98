"""Federation overhead per round, and the aggregator's peak memory from 2 to 16 sites.

1. **Overhead share.** The real ServerApp (``run_rounds``: signing, update validation,
   FedAvg, signed checkpoint, results store) and the real ClientApp (signature check, DP-SGD,
   evaluation) run over a Grid that pushes every message and reply through Flower's protobuf
   serialisation (``message_to_proto`` / ``message_from_proto``) and times each site's
   ClientApp call. Sites run one after another here; a consortium runs them in parallel, so a
   round's wall time is taken as ``overhead + sum over phases of the slowest site``, with
   ``overhead = round wall - all site time``: signing, validation, aggregation,
   checkpointing, results store, message construction and (de)serialisation. Not in it: the
   network and Flower's per-message ``flwr-clientapp`` process start at a site (see
   docs/deployment.md for loopback deployment timings). Target: <= 5 %.
2. **Peak memory.** One fresh process per site count N in (2, 4, 8, 16) builds N training
   replies of the preset's model (as Flower holds them: all replies of a round at once) and
   runs one ``configure_train`` + ``aggregate_train`` of ``SiteRecordingStrategy(FedAvg)``
   with validation and a signed checkpoint. Reported: peak RSS of that process
   (``ru_maxrss``), and the aggregator's own working memory: the tracemalloc peak *during*
   ``aggregate_train`` above what was allocated before it (the replies). Target: the working
   memory flat from 2 to 16 sites (<= 1.2x).

Writes ``benchmarks/results/federation.json``.
Usage: ``python -m benchmarks.bench_federation [--preset demo] [--rounds 2] [--local-steps 10]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

logger = logging.getLogger("bench_federation")
RESULTS = Path(__file__).resolve().parent / "results" / "federation.json"
SITE_COUNTS = (2, 4, 8, 16)
OVERHEAD_TARGET = 0.05
MEMORY_TARGET = 1.2


def _set_task_identity() -> None:
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1


# -- 1. overhead share ----------------------------------------------------------------------------
class _SerialisingGrid:
    """Delivers messages to in-process ClientApps through Flower's protobuf serde, timing sites."""

    def __init__(self, site_dirs: list[Path], aggregator_key: Path) -> None:
        from flwr.app import Context, RecordDict

        self.contexts = {
            2001 + i: Context(run_id=1, node_id=2001 + i, state=RecordDict(), run_config={},
                              node_config={"site-dir": str(d), "aggregator-key": str(aggregator_key)})
            for i, d in enumerate(site_dirs)}
        self.phases: list[dict[str, Any]] = []

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def send_and_receive(self, messages: Any, *, timeout: float | None = None) -> list[Any]:
        from flwr.common.serde import message_from_proto, message_to_proto

        from federation.client_app import app as client_app

        started = time.perf_counter()
        site_seconds, replies = [], []
        for message in messages:
            delivered = message_from_proto(message_to_proto(message))
            t0 = time.perf_counter()
            reply = client_app(delivered, self.contexts[message.metadata.dst_node_id])
            site_seconds.append(time.perf_counter() - t0)
            replies.append(message_from_proto(message_to_proto(reply)))
        self.phases.append({"site_seconds": site_seconds,
                            "grid_seconds": time.perf_counter() - started})
        return replies


def _prepare_sites(root: Path, n_sites: int, patients: int, preset: str) -> list[Path]:
    from client_site.ingestion import ingest_site
    from client_site.layout import SiteLayout
    from client_site.site_config import write_site_config
    from client_site.synthetic import generate_consortium
    from federation.presets import get_preset

    site_dirs = generate_consortium(root, n_sites=n_sites, patients_per_site=patients, seed=0,
                                    matrix=64, progress=False)
    for site_dir in site_dirs:
        write_site_config(site_dir, name=site_dir.name, epsilon=1000.0, delta=1e-5)
        ingest_site(site_dir, SiteLayout(site_dir).cache_dir, config=get_preset(preset).preprocess,
                    progress=False)
    return site_dirs


def measure_overhead(*, preset: str, rounds: int, local_steps: int, n_sites: int, patients: int) -> dict[str, Any]:
    """Run ``rounds`` rounds over a serialising in-process Grid; return the overhead figures."""
    import torch

    from aggregator.signing import load_or_create_signing_key
    from federation.config import FederationConfig
    from federation.server_app import run_rounds

    torch.set_num_threads(1)
    _set_task_identity()
    with tempfile.TemporaryDirectory(prefix="bench-federation-") as tmp:
        site_dirs = _prepare_sites(Path(tmp) / "sites", n_sites, patients, preset)
        config = FederationConfig(workdir=str(Path(tmp) / "work"), run_name="bench", num_rounds=rounds,
                                  model_preset=preset, local_steps=local_steps, min_sites=n_sites)
        load_or_create_signing_key(config.signing_key_path)
        grid = _SerialisingGrid(site_dirs, config.signing_key_path.with_suffix(".pub"))
        started = time.perf_counter()
        run_rounds(grid, config)  # type: ignore[arg-type]
        total = time.perf_counter() - started
    all_site = sum(sum(p["site_seconds"]) for p in grid.phases)
    slowest = sum(max(p["site_seconds"]) for p in grid.phases)
    overhead = total - all_site
    parallel_wall = overhead + slowest
    return {
        "preset": preset, "rounds": rounds, "local_steps": local_steps, "sites": n_sites,
        "patients_per_site": patients, "wall_seconds_sequential_sites": total,
        "site_seconds_total": all_site, "site_seconds_slowest_per_phase_sum": slowest,
        "overhead_seconds": overhead, "overhead_seconds_per_round": overhead / rounds,
        "round_wall_seconds_parallel_sites": parallel_wall / rounds,
        "overhead_share": overhead / parallel_wall,
        "overhead_share_vs_sequential_wall": overhead / total,
        "target_share": OVERHEAD_TARGET, "meets_target": overhead / parallel_wall <= OVERHEAD_TARGET,
    }


# -- 2. peak memory ---------------------------------------------------------------------------------
def _memory_child(n_sites: int, preset: str) -> dict[str, Any]:
    """Inside a fresh process: one aggregation round over ``n_sites`` replies."""
    import numpy as np
    import torch
    from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
    from flwr.serverapp.strategy import FedAvg

    from aggregator.results_store import ResultsStore
    from aggregator.signing import load_or_create_signing_key
    from aggregator.site_recorder import SITE_RECORD, SiteRecordingStrategy
    from client_site.model import MedMPT
    from federation.presets import get_preset

    _set_task_identity()
    torch.manual_seed(0)
    reference = {k: v.numpy() for k, v in MedMPT(get_preset(preset).model).state_dict().items()}
    model_bytes = sum(v.nbytes for v in reference.values())

    class _Grid:
        def get_node_ids(self) -> list[int]:
            return list(range(1, n_sites + 1))

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        strategy = SiteRecordingStrategy(
            FedAvg(min_train_nodes=n_sites, min_available_nodes=n_sites),
            store=ResultsStore(Path(tmp) / "results.sqlite"), run_id="bench",
            checkpoint_dir=Path(tmp) / "ckpt", signing_key=load_or_create_signing_key(Path(tmp) / "k.pem"))
        arrays = ArrayRecord({k: Array(v) for k, v in reference.items()})
        messages = list(strategy.configure_train(1, arrays, ConfigRecord({}), _Grid()))  # type: ignore[arg-type]
        rng = np.random.default_rng(0)
        replies = []
        for i, message in enumerate(messages):
            update = {k: Array((v + 1e-3 * rng.standard_normal(v.shape)).astype(v.dtype))
                      for k, v in reference.items()}
            replies.append(Message(RecordDict({
                "arrays": ArrayRecord(update),
                "metrics": MetricRecord({"num-examples": 10 + i, "train_loss": 1.0}),
                SITE_RECORD: ConfigRecord({"name": f"site-{i}"})}), reply_to=message))
        before_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        baseline, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        t0 = time.perf_counter()
        strategy.aggregate_train(1, replies)
        seconds = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return {"sites": n_sites, "model_mb": model_bytes / 2**20,
            "aggregate_working_mb": (peak - baseline) / 2**20, "aggregate_seconds": seconds,
            "rss_before_aggregation_mb": before_rss / 1024,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure_memory(preset: str) -> dict[str, Any]:
    """Peak memory per site count, each in its own process."""
    rows = []
    for n in SITE_COUNTS:
        done = subprocess.run([sys.executable, "-m", "benchmarks.bench_federation", "--memory-child",
                               str(n), "--preset", preset], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parents[1])
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        logger.info("memory, %d sites: %s", n, rows[-1])
    first, last = rows[0], rows[-1]
    working_ratio = last["aggregate_working_mb"] / first["aggregate_working_mb"]
    return {"preset": preset, "rows": rows,
            "working_memory_ratio_16_vs_2": working_ratio,
            "peak_rss_ratio_16_vs_2": last["peak_rss_mb"] / first["peak_rss_mb"],
            "target_ratio": MEMORY_TARGET, "meets_target": working_ratio <= MEMORY_TARGET}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both measurements and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--local-steps", type=int, default=10)
    parser.add_argument("--sites", type=int, default=2)
    parser.add_argument("--patients", type=int, default=16)
    parser.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv if argv is not None else [])
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    if args.memory_child:
        print(json.dumps(_memory_child(args.memory_child, args.preset)))
        return {}
    result = {
        "host": {"platform": platform.platform(), "cpus": os.cpu_count(),
                 "load_average": os.getloadavg()},
        "memory": measure_memory(args.preset),
        "overhead": measure_overhead(preset=args.preset, rounds=args.rounds,
                                     local_steps=args.local_steps, n_sites=args.sites,
                                     patients=args.patients),
    }
    result["host"]["load_average_after"] = os.getloadavg()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2), encoding="utf-8")
    logger.info("overhead share %.2f%% (target %.0f%%), working memory 16/2 sites %.2fx (target %.1fx)",
                100 * result["overhead"]["overhead_share"], 100 * OVERHEAD_TARGET,
                result["memory"]["working_memory_ratio_16_vs_2"], MEMORY_TARGET)
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    main(sys.argv[1:])
