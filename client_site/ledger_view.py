"""A human-readable view of a site's privacy ledger, for its data-protection officer."""

from __future__ import annotations

from pathlib import Path

from client_site.layout import SiteLayout
from client_site.site_config import load_site_config
from privacy.ledger import PrivacyLedger


def format_ledger(site_dir: Path) -> str:
    """One line per DP segment with the cumulative epsilon, then the budget left."""
    config = load_site_config(site_dir)
    ledger = PrivacyLedger(SiteLayout(Path(site_dir)).ledger_path, mechanism=config.accountant)
    budget = config.budget
    lines = [
        f"site {config.name}: budget epsilon={budget.epsilon:g}, delta={budget.delta:g}, "
        f"accountant={config.accountant}",
        f"{'time':20}  {'run':24} {'round':>5} {'sigma':>7} {'q':>8} {'steps':>6} {'eps after':>9}  status",
    ]
    completed = {(e["run_id"], e["round"]) for e in ledger.entries if e["event"] == "segment_completed"}
    for e in ledger.entries:
        if e["event"] != "segment_started":
            continue
        status = "completed" if (e["run_id"], e["round"]) in completed else "spent (not completed)"
        lines.append(
            f"{e['time']:20}  {e['run_id']:24} {e['round']:>5} {e['noise_multiplier']:>7.3f} "
            f"{e['sample_rate']:>8.4f} {e['steps']:>6} {e['epsilon_after']:>9.3f}  {status}"
        )
    spent = ledger.epsilon(delta=budget.delta)
    lines.append(f"spent epsilon={spent:.3f} of {budget.epsilon:g}; remaining {budget.epsilon - spent:.3f}")
    return "\n".join(lines)
