"""``fedmpt rounds status`` / ``results``: a run as the lead reads it, from Flower and the results store.

Every registered site gets a row in every round's train and evaluate phase; a site the
ServerApp did not send the phase to (not connected when it started) gets one too, saying so.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from aggregator.results_store import ResultsStore
from federation.deploy.consortium import Consortium
from federation.deploy.flower_cli import FlowerCommandError

PHASES = ("train", "evaluate")
_DONE = {"train": "trained", "evaluate": "evaluated"}
NOT_SENT = "not sent: the site was not connected when the phase started"


def run_record(consortium: Consortium, run_name: str | None) -> dict[str, Any]:
    """The launch record of ``run_name`` (default: the last launched)."""
    from federation.deploy.rounds import last_run

    if run_name is None:
        record = last_run(consortium)
    else:
        path = consortium.runs_dir / f"{run_name}.json"
        record = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    if record is None:
        known = sorted(p.stem for p in consortium.runs_dir.glob("*.json"))
        raise FileNotFoundError(f"no run {run_name!r} launched from {consortium.root}; launched: {known}"
                                if run_name else f"no run launched from {consortium.root} yet")
    return record


def stored_run(store_path: Path, run_name: str | None) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                                list[dict[str, Any]]]:
    """(run row, participation, site metrics) from a results store; default: its newest run."""
    if not store_path.exists():
        raise FileNotFoundError(f"no results store at {store_path}: no run has started there yet")
    store = ResultsStore(store_path, read_only=True)
    try:
        runs = store.runs()
        row = next((r for r in runs if r["run_id"] == run_name), None) if run_name else \
            (runs[0] if runs else None)
        if row is None:
            raise FileNotFoundError(f"no run {run_name!r} in {store_path}; runs: "
                                    f"{[r['run_id'] for r in runs]}")
        return row, store.participation(row["run_id"]), store.site_metrics(row["run_id"])
    finally:
        store.close()


def participation_rows(participation: list[dict[str, Any]], sites: list[str]) -> list[dict[str, Any]]:
    """One row per (round, phase, site), train before evaluate, registered sites never left out."""
    seen: dict[tuple[int, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for p in participation:
        seen[(int(p["round"]), p["phase"])][p["site"] or f"node {p['node_id']}"] = p
    rows = []
    for rnd, phase in sorted(seen, key=lambda k: (k[0], PHASES.index(k[1]) if k[1] in PHASES else 9)):
        by_site = seen[(rnd, phase)]
        for site in sorted(set(sites) | set(by_site)):
            p = by_site.get(site)
            rows.append({"round": rnd, "phase": phase, "site": site,
                         "status": p["status"] if p else "not sent",
                         "reason": (p["reason"] or "") if p else NOT_SENT})
    return rows


def describe(row: dict[str, Any]) -> str:
    """Human wording of one participation row."""
    if row["status"] == "ok":
        return _DONE.get(row["phase"], "ok")
    if row["status"] == "rejected":
        return f"update rejected: {row['reason']}"
    if row["status"] == "failed":
        return f"failed: {row['reason']}"
    return row["reason"]


def run_state(stored: dict[str, Any] | None, rows: list[dict[str, Any]]) -> str:
    """``completed``, ``FAILED: why`` or ``running, k of N rounds trained``."""
    if stored is None:
        return "submitted; the ServerApp has not started it yet"
    if stored["status"] == "completed":
        return f"completed ({stored['num_rounds']} rounds)"
    if stored["status"] == "failed":
        return f"FAILED: {stored.get('status_detail') or 'no detail recorded'}"
    trained = {r["round"] for r in rows if r["phase"] == "train" and r["status"] == "ok"}
    return f"running, {len(trained)} of {stored['num_rounds']} rounds trained so far"


def run_report(consortium: Consortium, run_name: str | None = None) -> dict[str, Any]:
    """Status of ``run_name`` (default: the last launched) as data and as text."""
    from federation.deploy.rounds import flower_status

    record = run_record(consortium, run_name)
    try:
        flower: dict[str, Any] = flower_status(consortium, int(record["run_id"]))
        flower_text = str(flower.get("status"))
    except FlowerCommandError:  # SuperLink down: the results store still answers
        flower, flower_text = {}, "unknown (the SuperLink does not answer)"
    try:
        stored, participation, _ = stored_run(consortium.aggregator_dir / "results.sqlite",
                                              record["run_name"])
    except FileNotFoundError:
        stored, participation = None, []
    sites = [n for n, e in consortium.registry().items() if not e.get("revoked")]
    rows = participation_rows(participation, sites)
    lines = [f"run {record['run_name']}: {run_state(stored, rows)}",
             f"  Flower run {record['run_id']}: {flower_text}; app bundle {record['fab_hash']}"]
    lines += [f"  round {r['round']:>3} {r['phase']:<8} {r['site']:<20} {describe(r)}" for r in rows]
    return {"run": record, "flower": flower, "store": stored, "participation": rows,
            "state": run_state(stored, rows), "text": "\n".join(lines)}


def results_report(directory: Path, run_name: str | None = None) -> dict[str, Any]:
    """Per-site metrics, epsilon and participation of a run in ``DIR/aggregator/results.sqlite``."""
    stored, participation, metrics = stored_run(Path(directory) / "aggregator" / "results.sqlite", run_name)
    sites: dict[str, dict[str, Any]] = defaultdict(lambda: {"trained": 0, "evaluated": 0, "failed": [],
                                                            "last": {}})
    for p in participation:
        site = sites[p["site"] or f"node {p['node_id']}"]
        if p["status"] == "ok":
            site["trained" if p["phase"] == "train" else "evaluated"] += 1
        else:
            site["failed"].append(f"round {p['round']} {p['phase']}: {describe(p)}")
    for m in metrics:  # rows come in round order: the last value per (phase, metric) stays
        sites[m["site"]]["last"][f"{m['phase']}/{m['metric']}"] = m["value"]
    rows = participation_rows(participation, list(sites))
    lines = [f"run {stored['run_id']}: {run_state(stored, rows)}",
             f"{'site':<16} {'trained':>8} {'evaluated':>10} {'epsilon':>9} {'budget':>7}  last metrics"]
    for name, s in sorted(sites.items()):
        last = s["last"]
        eps, budget = last.get("train/epsilon"), last.get("train/epsilon_budget")
        shown = ", ".join(f"{k} {'n/a' if v is None else format(v, '.4g')}"  # NaN is stored as NULL
                          for k, v in sorted(last.items()) if not k.endswith(("epsilon", "epsilon_budget")))
        lines.append(f"{name:<16} {s['trained']:>8} {s['evaluated']:>10} "
                     f"{'-' if eps is None else f'{eps:.3f}':>9} {'-' if budget is None else f'{budget:g}':>7}  "
                     f"{shown or '-'}")
        lines += [f"    {failure}" for failure in s["failed"]]
    return {"run": stored, "sites": dict(sites), "text": "\n".join(lines)}
