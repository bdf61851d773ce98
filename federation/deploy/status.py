"""``fedmpt rounds status``: Flower's view of a run plus each site's participation per round."""

from __future__ import annotations

import json
from typing import Any

from aggregator.results_store import ResultsStore
from federation.deploy.consortium import Consortium
from federation.deploy.flower_cli import FlowerCommandError


def run_report(consortium: Consortium, run_name: str | None = None) -> dict[str, Any]:
    """Status of ``run_name`` (default: the last launched) as data and as text."""
    from federation.deploy.rounds import flower_status, last_run

    if run_name is None:
        record = last_run(consortium)
    else:
        path = consortium.runs_dir / f"{run_name}.json"
        record = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    if record is None:
        raise FileNotFoundError(f"no run launched from {consortium.root} yet"
                                + (f" named {run_name!r}" if run_name else ""))
    try:
        flower: dict[str, Any] = flower_status(consortium, int(record["run_id"]))
    except FlowerCommandError as e:  # SuperLink down: the results store still answers
        flower = {"status": f"unknown ({e})"}
    store_path = consortium.aggregator_dir / "results.sqlite"
    participation: list[dict[str, Any]] = []
    stored: dict[str, Any] | None = None
    if store_path.exists():
        store = ResultsStore(store_path, read_only=True)
        try:
            participation = store.participation(record["run_name"])
            stored = next((r for r in store.runs() if r["run_id"] == record["run_name"]), None)
        finally:
            store.close()
    lines = [f"run {record['run_name']}: Flower run {record['run_id']} {flower.get('status')}"
             f"{' ' + str(flower.get('status-details')) if flower.get('status-details') else ''}",
             f"  FAB {record['fab_hash']}",
             f"  results store: {stored['status'] if stored else 'no record'}"
             f"{' after ' + str(stored['num_rounds']) + ' rounds' if stored else ''}"]
    for p in participation:
        reason = f"  ({p['reason']})" if p["reason"] else ""
        lines.append(f"  round {p['round']:>3} {p['phase']:<8} {p['site'] or 'node ' + p['node_id']:<20} "
                     f"{p['status']}{reason}")
    return {"run": record, "flower": flower, "store": stored, "participation": participation,
            "text": "\n".join(lines)}
