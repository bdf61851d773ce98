"""Launch and follow federated runs on the consortium's SuperLink (the lead's side).

``flwr run`` builds the FAB from the app directory and submits it through the Control API
(loopback, on the aggregator host). It exits 0 even when the ServerApp fails, so the outcome
is read back with ``flwr ls --run-id ID --format json`` (``finished:completed``,
``finished:failed`` with ``status-details``, ``finished:stopped``).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import tempfile
import time
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pathspec

from federation.config import FederationConfig
from federation.deploy.consortium import Consortium
from federation.deploy.flower_cli import CONNECTION, FlowerCommandError, run_flwr_json
from infra.compat import build_fab as compat_build_fab

APP_DIR = Path(__file__).resolve().parents[2]  # the FedMPT project: pyproject.toml + packages


def build_fab(app_dir: Path = APP_DIR) -> tuple[bytes, str]:
    """The FAB ``flwr run`` would submit, and its SHA-256 (what sites approve)."""
    fab = compat_build_fab(app_dir)
    return fab, hashlib.sha256(fab).hexdigest()


def snapshot_app(app_dir: Path, dest: Path) -> str:
    """Freeze the app as a FAB's files under ``dest``; return the FAB hash ``flwr run`` will send.

    The sources may change while a run is being launched (or be edited afterwards); running
    from an extracted copy of the FAB makes the printed hash exactly what sites receive, and
    keeps what ran for audit.
    """
    fab, fab_hash = build_fab(app_dir)
    dest = Path(dest)
    with zipfile.ZipFile(io.BytesIO(fab)) as archive:
        for name in archive.namelist():
            if name.startswith(".info/") or name.startswith("/") or ".." in Path(name).parts:
                continue
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(name))
    _copy_excluded(Path(app_dir), dest)
    _, rebuilt = build_fab(dest)
    if rebuilt != fab_hash:
        raise RuntimeError(f"snapshot of {app_dir} rebuilds to {rebuilt[:12]}, not {fab_hash[:12]}")
    return fab_hash


def _copy_excluded(app_dir: Path, dest: Path) -> None:
    """Copy the files ``fab-exclude`` leaves out of the FAB next to the snapshot.

    Flower refuses to build when a ``fab-exclude`` pattern matches no file, and the snapshot
    holds only the FAB's files: with these beside them the rebuild sees the same tree, and
    excludes them again (they never reach a site).
    """
    app = tomllib.loads((app_dir / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["flwr"]["app"]
    patterns = list(app.get("fab-exclude", []))
    spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    for top in sorted({p.split("/")[0] for p in patterns}):  # not the whole tree (.venv)
        for path in sorted((app_dir / top).rglob("*")):
            relative = path.relative_to(app_dir).as_posix()
            if path.is_file() and spec.match_file(relative) and not (dest / relative).exists():
                (dest / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest / relative)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a TOML basic string


@dataclass(frozen=True)
class LaunchedRun:
    """A run submitted to the SuperLink."""

    run_name: str
    run_id: int
    fab_hash: str
    record: Path


def launch(consortium: Consortium, config: FederationConfig, *, app_dir: Path = APP_DIR) -> LaunchedRun:
    """Submit ``config`` as a Flower run; record it under ``DIR/runs/<run-name>.json``.

    The app is frozen first (:func:`snapshot_app` into ``DIR/runs/<run-name>/app-<hash>``),
    so the FAB hash returned is the one every site is asked to run.
    """
    consortium.runs_dir.mkdir(parents=True, exist_ok=True)
    run_dir = consortium.runs_dir / config.run_name
    config_path = consortium.runs_dir / f"{config.run_name}.toml"
    first_attempt = not run_dir.exists()
    try:
        frozen, fab_hash = _freeze_app(app_dir, run_dir)
        config_path.write_text("".join(f"{k} = {_toml_value(v)}\n"
                                       for k, v in config.as_run_config().items()), encoding="utf-8")
        out = run_flwr_json(["run", str(frozen), CONNECTION, "--run-config", str(config_path)],
                            flwr_home=consortium.flwr_home, cwd=frozen)
    except BaseException:
        if first_attempt:  # leave nothing behind of a run that was never submitted
            shutil.rmtree(run_dir, ignore_errors=True)
            config_path.unlink(missing_ok=True)
        raise
    run_id = int(out["run-id"])
    if not fab_hash.startswith(str(out.get("fab-hash", ""))):
        raise FlowerCommandError(f"flwr run submitted FAB {out.get('fab-hash')}..., not the "
                                 f"{fab_hash[:8]}... built here; the app changed meanwhile")
    record = consortium.runs_dir / f"{config.run_name}.json"
    history = json.loads(record.read_text(encoding="utf-8")) if record.exists() else {"attempts": []}
    history["attempts"].append({"run_id": run_id, "fab_hash": fab_hash, "resume": config.resume,
                                "submitted_at": time.time()})
    history.update({"run_name": config.run_name, "config": str(config_path), "run_id": run_id,
                    "fab_hash": fab_hash, "app": str(frozen)})
    record.write_text(json.dumps(history, indent=1), encoding="utf-8")
    return LaunchedRun(config.run_name, run_id, fab_hash, record)


def _freeze_app(app_dir: Path, run_dir: Path) -> tuple[Path, str]:
    """Snapshot the app into ``run_dir/app-<hash>`` (kept if already there); return it and the hash."""
    staging = Path(tempfile.mkdtemp(prefix=".app-", dir=run_dir.parent))
    try:
        fab_hash = snapshot_app(app_dir, staging)
        frozen = run_dir / f"app-{fab_hash[:16]}"
        if not frozen.exists():
            frozen.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(frozen)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return frozen, fab_hash


def run_config_for(consortium: Consortium, **options: Any) -> FederationConfig:
    """A run config whose paths point into the consortium directory."""
    return FederationConfig(workdir=str(consortium.root), signing_key=str(consortium.signing_key),
                            site_registry=str(consortium.registry_path), **options)


def flower_status(consortium: Consortium, run_id: int) -> dict[str, Any]:
    """The run's row from ``flwr ls --run-id ID --format json``."""
    out = run_flwr_json(["ls", "--run-id", str(run_id), CONNECTION], flwr_home=consortium.flwr_home)
    runs = out.get("runs", [])
    if not runs:
        raise FlowerCommandError(f"the SuperLink knows no run {run_id}")
    row: dict[str, Any] = runs[0]
    return row


def wait_for(consortium: Consortium, run_id: int, *, timeout: float = 3600.0, poll_s: float = 5.0,
             run_name: str | None = None) -> dict[str, Any]:
    """Poll until the run is ``finished:*``; return its last ``flwr ls`` row.

    Each ``flwr ls`` starts an interpreter (about 1 s of CPU). With ``run_name``, the results
    store is read every second in between and Flower is asked again as soon as the store says
    the run ended, else every ``poll_s`` s (for a ServerApp that died without a word).
    """
    started, deadline = time.time(), time.monotonic() + timeout
    while True:
        row = flower_status(consortium, run_id)
        if str(row.get("status", "")).startswith("finished"):
            return row
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {row.get('status')} after {timeout:.0f} s")
        ask_again = time.monotonic() + poll_s
        time.sleep(1.0)
        while time.monotonic() < ask_again and not (run_name and _ended_in_store(consortium, run_name, started)):
            time.sleep(1.0)


def _ended_in_store(consortium: Consortium, run_name: str, since: float) -> bool:
    """Whether the results store says ``run_name`` finished (completed or failed) after ``since``."""
    from federation.deploy.status import stored_run

    try:
        row, _, _ = stored_run(consortium.aggregator_dir / "results.sqlite", run_name)
    except (FileNotFoundError, sqlite3.Error):  # no store or run yet, or its tables being created
        return False
    return row["status"] != "running" and (row["finished_at"] or 0) >= since


def last_run(consortium: Consortium) -> dict[str, Any] | None:
    """The most recently submitted run record, if any."""
    records = sorted(consortium.runs_dir.glob("*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(records[-1].read_text(encoding="utf-8")) if records else None


def resume_last(consortium: Consortium) -> LaunchedRun | None:
    """Resubmit the last run with ``resume = true`` unless the results store says it completed.

    It runs the frozen app of the first submission, so sites see the FAB they approved.
    """
    from aggregator.results_store import ResultsStore

    record = last_run(consortium)
    if record is None or record.get("aborted"):
        return None
    store_path = consortium.aggregator_dir / "results.sqlite"
    if store_path.exists():
        store = ResultsStore(store_path, read_only=True)
        try:
            row = next((r for r in store.runs() if r["run_id"] == record["run_name"]), None)
        finally:
            store.close()
        if row is not None and row["status"] == "completed":
            return None
    values = tomllib.loads(Path(record["config"]).read_text(encoding="utf-8"))
    values["resume"] = True
    return launch(consortium, FederationConfig.from_run_config(values), app_dir=Path(record["app"]))


def abort(consortium: Consortium, run_name: str) -> str:
    """Stop ``run_name`` on the SuperLink (``flwr stop``) and record it as aborted; say what was done.

    The results store marks it failed ("aborted by the lead") and ``aggregator start --resume``
    leaves it alone.
    """
    from aggregator.results_store import ResultsStore
    from federation.deploy.status import run_record

    record = run_record(consortium, run_name)
    run_id = int(record["run_id"])
    status = str(flower_status(consortium, run_id).get("status", ""))
    if status.startswith("finished"):
        return f"run {run_name} (Flower run {run_id}) has already {status}; nothing to stop"
    run_flwr_json(["stop", str(run_id), CONNECTION], flwr_home=consortium.flwr_home)
    record["aborted"] = True
    (consortium.runs_dir / f"{run_name}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    store_path = consortium.aggregator_dir / "results.sqlite"
    if store_path.exists():
        store = ResultsStore(store_path)
        try:
            store.finish_run(run_name, status="failed", detail="aborted by the lead (fedmpt rounds abort)")
        finally:
            store.close()
    return f"stopped run {run_name} (Flower run {run_id}, was {status})"
