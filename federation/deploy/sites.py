"""Who is there: each registered site's connection, the app bundles it ran or refused, its budget.

Online/offline comes from the SuperLink (``flwr supernode ls``: Flower marks a node offline
after missed heartbeats). What a site approved is known only from what it last did: the FAB
hash of the last run it trained in (approved) or refused ("app bundle ... is not approved"),
and the epsilon it reported then. ``fedmpt rounds start`` checks these before submitting.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from aggregator.results_store import ResultsStore
from federation.deploy.consortium import Consortium
from federation.deploy.flower_cli import CONNECTION, run_flwr_json

NOT_APPROVED = "is not approved"  # the site gate's refusal (federation/deploy/fab_gate.py)


@dataclass
class SiteState:
    """What the aggregator knows about one registered site."""

    name: str
    node_id: int | None
    connection: str  # online, offline, never connected, not registered, revoked
    since: str  # when the connection last changed (UTC), "" if never
    ran_fab: str = ""  # FAB hash of the last run the site trained in
    refused_fab: str = ""  # FAB hash it refused last, if it refused the last run it was asked in
    last_run: str = ""
    epsilon: float | None = None  # spent, as last reported
    epsilon_budget: float | None = None

    def approval_of(self, fab_hash: str) -> str:
        """``approved``, ``refused`` or ``unknown`` for ``fab_hash``, from the last report."""
        if self.refused_fab == fab_hash:
            return "refused"
        return "approved" if self.ran_fab == fab_hash else "unknown"


def _nodes(consortium: Consortium) -> dict[int, dict[str, Any]]:
    out = run_flwr_json(["supernode", "ls", CONNECTION], flwr_home=consortium.flwr_home)
    return {int(n["node-id"]): n for n in out.get("nodes", [])}


def _connection(entry: dict[str, Any], node: dict[str, Any] | None) -> tuple[str, str]:
    if entry.get("revoked"):
        return "revoked", ""
    if entry.get("node_id") is None or node is None:
        return "not registered", ""
    status = str(node.get("status"))
    if status == "online":
        return "online", str(node.get("online-at") or "")
    if status == "offline":
        return "offline", str(node.get("offline-at") or "")
    return ("never connected", "") if status == "registered" else (status, "")


def _run_records(consortium: Consortium) -> list[dict[str, Any]]:
    """Launched runs, oldest first."""
    paths = sorted(consortium.runs_dir.glob("*.json"), key=lambda p: p.stat().st_mtime)
    return [json.loads(p.read_text(encoding="utf-8")) for p in paths]


def _add_reports(consortium: Consortium, states: dict[str, SiteState]) -> None:
    store_path = consortium.aggregator_dir / "results.sqlite"
    if not store_path.exists():
        return
    store = ResultsStore(store_path, read_only=True)
    try:
        for record in _run_records(consortium):
            run, fab = str(record["run_name"]), str(record["fab_hash"])
            for row in store.participation(run):
                state = states.get(row["site"] or "")
                if state is None or row["phase"] != "train":
                    continue
                state.last_run = run
                if row["status"] == "ok":
                    state.ran_fab, state.refused_fab = fab, ""
                elif NOT_APPROVED in (row["reason"] or ""):
                    state.refused_fab = fab
            for row in store.site_metrics(run):
                state = states.get(row["site"])
                if state is not None and row["phase"] == "train":
                    if row["metric"] == "epsilon":
                        state.epsilon = float(row["value"])
                    elif row["metric"] == "epsilon_budget":
                        state.epsilon_budget = float(row["value"])
    finally:
        store.close()


def site_states(consortium: Consortium) -> list[SiteState]:
    """Every site in the registry, with its connection and its last report (needs the SuperLink)."""
    nodes = _nodes(consortium)
    states: dict[str, SiteState] = {}
    for name, entry in sorted(consortium.registry().items()):
        node_id = entry.get("node_id")
        connection, since = _connection(entry, nodes.get(int(node_id)) if node_id is not None else None)
        states[name] = SiteState(name, node_id, connection, since)
    _add_reports(consortium, states)
    return list(states.values())


def missing_sites(states: list[SiteState], fab_hash: str) -> dict[str, str]:
    """Sites that cannot take part in a run of ``fab_hash``, with the reason and the fix."""
    missing = {}
    for state in states:
        if state.connection != "online":
            when = f" since {state.since}" if state.since else ""
            missing[state.name] = f"{state.connection}{when}: start it with `fedmpt site start`"
        elif state.approval_of(fab_hash) == "refused":
            missing[state.name] = (f"refused app bundle {fab_hash[:12]}... in run {state.last_run}: "
                                   f"it must run `fedmpt site approve {fab_hash}`")
    return missing


def format_sites(states: list[SiteState], fab_hash: str | None = None) -> str:
    """One line per site: connection, approval of ``fab_hash`` (or the last FAB it ran), epsilon."""
    lines = [f"{'site':<16} {'node':>20}  {'connection':<28} {'app bundle':<32} epsilon spent / budget"]
    for s in states:
        since = f" since {s.since[:19]}" if s.since else ""
        if fab_hash:
            bundle = {"approved": f"approved {fab_hash[:12]}...", "refused": f"REFUSED {fab_hash[:12]}...",
                      "unknown": "not reported yet"}[s.approval_of(fab_hash)]
        else:
            bundle = f"ran {s.ran_fab[:12]}..." if s.ran_fab else (
                f"refused {s.refused_fab[:12]}..." if s.refused_fab else "no run yet")
        budget = ("not reported" if s.epsilon is None else
                  f"{s.epsilon:.3f} / {s.epsilon_budget:g}" if s.epsilon_budget is not None else f"{s.epsilon:.3f}")
        lines.append(f"{s.name:<16} {str(s.node_id or '-'):>20}  {s.connection + since:<28} {bundle:<32} {budget}")
    return "\n".join(lines)


def as_dicts(states: list[SiteState]) -> list[dict[str, Any]]:
    """JSON-ready rows."""
    return [asdict(s) for s in states]
