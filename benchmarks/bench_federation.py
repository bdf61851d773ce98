"""Federation overhead per round, and the aggregator's peak memory from 2 to 16 sites.

1. **Overhead share.** The real ServerApp (``run_rounds``: signing, update validation,
   FedAvg, signed checkpoint, results store) and the real ClientApp (signature check, DP-SGD,
   evaluation) run over a Grid that pushes every message and reply through Flower's protobuf
   serialisation (``message_to_proto`` / ``message_from_proto``) and times each site's
   ClientApp call. Sites run one after another here; a consortium runs them in parallel, so a
   round's wall time is taken as ``overhead + sum over phases of the slowest site``, with
   ``overhead = round wall - all site time``: signing, validation, aggregation,
   checkpointing, results store, spilling replies' arrays to disk, message construction and
   (de)serialisation. Not in it: the network and Flower's per-message ``flwr-clientapp``
   process start at a site (see docs/deployment.md for loopback deployment timings).
   Target: <= 5 %.
2. **Peak memory.** One fresh process per site count N in (2, 4, 8, 16) receives N training
   replies of the preset's model the way the ServerApp does: through ``SpillingGrid``
   (``aggregator/reply_spill.py``), which pulls one reply at a time and moves its arrays'
   bytes to files read back on access. A stand-in Grid builds each site's reply only when it
   is pulled, as replies arrive over the network, so the process never holds more than one
   reply's bytes before aggregation. Then one ``aggregate_train`` of
   ``SiteRecordingStrategy(FedAvg)`` runs with validation and a signed checkpoint. Reported:
   peak RSS of that process (``ru_maxrss``), its peak before ``aggregate_train``, and the
   aggregator's own working memory: the tracemalloc peak *during* ``aggregate_train`` above
   what was allocated before it. Target: both the working memory and the whole-process peak
   RSS flat from 2 to 16 sites (<= 1.2x). The spill files live in the page cache and on disk,
   not in the process: with a superlink in another process (deployment) this is the
   ServerApp's memory; in simulation Flower's in-memory link state holds replies until pulled.

Writes ``benchmarks/results/federation.json`` (``--out`` to change; ``--memory-only`` skips 1).
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

from experiments.push_pull_grid import PushPullGrid

logger = logging.getLogger("bench_federation")
RESULTS = Path(__file__).resolve().parent / "results" / "federation.json"
SITE_COUNTS = (2, 4, 8, 16)
OVERHEAD_TARGET = 0.05
MEMORY_TARGET = 1.2


def _set_task_identity() -> None:
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1


# -- 1. overhead share ----------------------------------------------------------------------------
class _SerialisingGrid(PushPullGrid):
    """Delivers messages to in-process ClientApps through Flower's protobuf serde, timing sites.

    Each push starts a phase; each pulled message runs its site.
    """

    def __init__(self, site_dirs: list[Path], aggregator_key: Path) -> None:
        from flwr.app import Context, RecordDict

        super().__init__()
        self.contexts = {
            2001 + i: Context(run_id=1, node_id=2001 + i, state=RecordDict(), run_config={},
                              node_config={"site-dir": str(d), "aggregator-key": str(aggregator_key)})
            for i, d in enumerate(site_dirs)}
        self.phases: list[dict[str, Any]] = []

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def push_messages(self, messages: Any) -> list[str]:
        self.phases.append({"site_seconds": [], "started": time.perf_counter()})
        return super().push_messages(messages)

    def deliver(self, message: Any) -> Any:
        from flwr.common.serde import message_from_proto, message_to_proto

        from federation.client_app import app as client_app

        phase = self.phases[-1]
        delivered = message_from_proto(message_to_proto(message))
        t0 = time.perf_counter()
        reply = client_app(delivered, self.contexts[delivered.metadata.dst_node_id])
        phase["site_seconds"].append(time.perf_counter() - t0)
        reply = message_from_proto(message_to_proto(reply))
        phase["grid_seconds"] = time.perf_counter() - phase["started"]
        return reply


def _prepare_sites(root: Path, n_sites: int, patients: int, preset: str) -> list[Path]:
    from client_site.ingestion import ingest_site
    from client_site.layout import SiteLayout
    from client_site.site_config import write_site_config
    from synthetic import generate_consortium
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
    """Inside a fresh process: one aggregation round over ``n_sites`` replies, received as the
    ServerApp receives them (through a ``SpillingGrid``)."""
    import numpy as np
    import torch
    from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
    from flwr.serverapp.strategy import FedAvg

    from aggregator.reply_spill import SpillingGrid
    from aggregator.results_store import ResultsStore
    from aggregator.signing import load_or_create_signing_key
    from aggregator.site_recorder import SiteRecordingStrategy
    from client_site.model import MedMPT
    from federation.presets import get_preset
    from infra.record_keys import RecordKey

    _set_task_identity()
    torch.manual_seed(0)
    reference = {k: v.numpy() for k, v in MedMPT(get_preset(preset).model).state_dict().items()}
    model_bytes = sum(v.nbytes for v in reference.values())

    class _Grid(PushPullGrid):
        """Sites that build their training reply only when it is pulled."""

        def get_node_ids(self) -> list[int]:
            return list(range(1, n_sites + 1))

        def deliver(self, message: Any) -> Any:
            node = message.metadata.dst_node_id
            rng = np.random.default_rng(node)
            update = {k: Array((v + 1e-3 * rng.standard_normal(v.shape)).astype(v.dtype))
                      for k, v in reference.items()}
            return Message(RecordDict({
                "arrays": ArrayRecord(update),
                "metrics": MetricRecord({"num-examples": 10 + node, "train_loss": 1.0}),
                RecordKey.SITE: ConfigRecord({"name": f"site-{node}"})}), reply_to=message)

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        strategy = SiteRecordingStrategy(
            FedAvg(min_train_nodes=n_sites, min_available_nodes=n_sites),
            store=ResultsStore(Path(tmp) / "results.sqlite"), run_id="bench",
            checkpoint_dir=Path(tmp) / "ckpt", signing_key=load_or_create_signing_key(Path(tmp) / "k.pem"))
        arrays = ArrayRecord({k: Array(v) for k, v in reference.items()})
        with SpillingGrid(_Grid(), Path(tmp) / "spill") as grid:  # type: ignore[arg-type]
            t0 = time.perf_counter()
            replies = grid.send_and_receive(strategy.configure_train(1, arrays, ConfigRecord({}), grid))
            receive_seconds = time.perf_counter() - t0
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
            "receive_seconds": receive_seconds,
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
    rss_ratio = last["peak_rss_mb"] / first["peak_rss_mb"]
    return {"preset": preset, "rows": rows,
            "working_memory_ratio_16_vs_2": working_ratio,
            "peak_rss_ratio_16_vs_2": rss_ratio,
            "target_ratio": MEMORY_TARGET,
            "meets_target": working_ratio <= MEMORY_TARGET and rss_ratio <= MEMORY_TARGET}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the measurements and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--local-steps", type=int, default=10)
    parser.add_argument("--sites", type=int, default=2)
    parser.add_argument("--patients", type=int, default=16)
    parser.add_argument("--memory-only", action="store_true", help="skip the overhead measurement")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"result file (default: {RESULTS})")
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
    }
    if not args.memory_only:
        result["overhead"] = measure_overhead(preset=args.preset, rounds=args.rounds,
                                              local_steps=args.local_steps, n_sites=args.sites,
                                              patients=args.patients)
        logger.info("overhead share %.2f%% (target %.0f%%)",
                    100 * result["overhead"]["overhead_share"], 100 * OVERHEAD_TARGET)
    result["host"]["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    logger.info("16/2 sites: working memory %.2fx, peak RSS %.2fx (target %.1fx)",
                result["memory"]["working_memory_ratio_16_vs_2"],
                result["memory"]["peak_rss_ratio_16_vs_2"], MEMORY_TARGET)
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    main(sys.argv[1:])
