"""Privacy tables for the dashboard: epsilon spent against each site's budget, and projections."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from dashboard.queries import OK, TRAIN, Row, metric_table, site_label

__all__ = ["epsilon_history", "privacy_table", "projected_rounds_left", "stage_shares", "stage_split_table"]

STAGE_COLUMNS = {"epsilon_ssl": "SSL epsilon", "epsilon_ssl_cap": "SSL share",
                 "epsilon_fine_tuning": "fine-tuning epsilon", "epsilon_fine_tuning_cap": "fine-tuning share"}
"""Train-reply metrics of the budget split (each stage priced on its own segments) and their labels."""
STAGES = {stage: (STAGE_COLUMNS[f"epsilon_{key}"], STAGE_COLUMNS[f"epsilon_{key}_cap"])
          for stage, key in (("SSL", "ssl"), ("fine-tuning", "fine_tuning"))}
"""Each stage's spent and cap columns of :func:`stage_split_table`."""
CONFIGURED, SPENT = "configured", "spent"

# 0.3 left / 0.1 per round is 2.9999999999999996 in floats; it must project 3 rounds, not 2.
_RATIO_SLACK = 1e-9


def epsilon_history(site_metrics: Iterable[Row]) -> pd.DataFrame:
    """Cumulative epsilon and budget each site reported after each round it trained.

    Returns
    -------
    pandas.DataFrame
        Columns round, site, epsilon, epsilon_budget (NaN when not reported), sorted by
        site then round; only rounds with a non-NULL epsilon.
    """
    rows = list(site_metrics)
    # pandas >= 3 keeps NaN when stacking, so undefined values are dropped explicitly.
    eps = metric_table(rows, TRAIN, "epsilon").stack().dropna()
    budget = metric_table(rows, TRAIN, "epsilon_budget").stack().dropna()
    long_eps = eps.rename("epsilon").reset_index()
    long_budget = budget.rename("epsilon_budget").reset_index()
    history = long_eps.merge(long_budget, on=["round", "site"], how="left")
    history = history.astype({"round": "int64", "epsilon": "float64", "epsilon_budget": "float64"})
    return history.sort_values(["site", "round"], ignore_index=True)[
        ["round", "site", "epsilon", "epsilon_budget"]
    ]


def projected_rounds_left(remaining: float | None, per_round_spend: float | None) -> int | None:
    """Rounds the remaining budget allows if each one costs ``per_round_spend`` (linear).

    A site refuses a round whose epsilon would go past its budget (``privacy.ledger``), so a
    round that lands exactly on the budget still counts.

    Parameters
    ----------
    remaining : float | None
        Budget minus the epsilon already spent; None when the budget is unknown.
    per_round_spend : float | None
        Epsilon the site's last trained round cost; None when unknown.

    Returns
    -------
    int | None
        ``floor(remaining / per_round_spend)``; 0 when nothing remains; None when it cannot be
        projected (unknown values, or no spend measured).
    """
    if remaining is None or per_round_spend is None:
        return None
    if not (math.isfinite(remaining) and math.isfinite(per_round_spend)):
        return None
    if remaining <= 0:
        return 0
    if per_round_spend <= 0:
        return None
    return math.floor(remaining / per_round_spend * (1 + _RATIO_SLACK))


def privacy_table(site_metrics: Iterable[Row], participation: Iterable[Row] = ()) -> pd.DataFrame:
    """Epsilon spent, budget, remaining and a linear projection of further rounds, per site.

    The per-round spend is the increase of the site's cumulative epsilon between its last two
    trained rounds of this run. With a single trained round it is that round's epsilon itself
    (as if the site started from zero), which overstates the spend if earlier runs already
    counted against the budget.

    Parameters
    ----------
    site_metrics : Iterable[Mapping[str, Any]]
        Long-format rows of the run (train metrics ``epsilon``, ``epsilon_budget``, ``delta``).
    participation : Iterable[Mapping[str, Any]]
        Participation rows of the run, to count failed or refused train rounds and to list
        sites that never trained. (default: ())

    Returns
    -------
    pandas.DataFrame
        Indexed by site; columns rounds_trained, last_round, epsilon, epsilon_budget, remaining,
        delta, last_round_spend, projected_rounds_left, failed_train_rounds.
    """
    metrics = list(site_metrics)
    replies = [r for r in participation if r["phase"] == TRAIN]
    eps = metric_table(metrics, TRAIN, "epsilon")
    budget = metric_table(metrics, TRAIN, "epsilon_budget")
    delta = metric_table(metrics, TRAIN, "delta")
    sites = sorted(set(eps.columns) | {site_label(r) for r in replies})
    records = []
    for site in sites:
        spent = eps[site].dropna() if site in eps.columns else pd.Series(dtype="float64")
        site_budget = _last(budget, site)
        record: dict[str, Any] = {
            "site": site,
            "rounds_trained": len(spent),
            "last_round": int(spent.index[-1]) if len(spent) else None,
            "epsilon": float(spent.iloc[-1]) if len(spent) else None,
            "epsilon_budget": site_budget,
            "delta": _last(delta, site),
            "failed_train_rounds": sum(
                1 for r in replies if site_label(r) == site and r["status"] != OK
            ),
        }
        spend = None
        if len(spent) >= 2:
            spend = float(spent.iloc[-1] - spent.iloc[-2])
        elif len(spent) == 1:
            spend = float(spent.iloc[-1])
        remaining = None
        if site_budget is not None and record["epsilon"] is not None:
            remaining = max(site_budget - record["epsilon"], 0.0)
        record["remaining"] = remaining
        record["last_round_spend"] = spend
        record["projected_rounds_left"] = projected_rounds_left(remaining, spend)
        records.append(record)
    columns = [
        "site", "rounds_trained", "last_round", "epsilon", "epsilon_budget", "remaining",
        "delta", "last_round_spend", "projected_rounds_left", "failed_train_rounds",
    ]  # fmt: skip
    table = pd.DataFrame.from_records(records, columns=columns)
    table = table.astype(
        {
            "rounds_trained": "int64",
            "last_round": "Int64",
            "epsilon": "float64",
            "epsilon_budget": "float64",
            "remaining": "float64",
            "delta": "float64",
            "last_round_spend": "float64",
            "projected_rounds_left": "Int64",
            "failed_train_rounds": "int64",
        }
    )
    return table.set_index("site")


def _last(table: pd.DataFrame, site: str) -> float | None:
    """The site's latest non-NULL value in a wide per-site table."""
    if site not in table.columns:
        return None
    values = table[site].dropna()
    return float(values.iloc[-1]) if len(values) else None


def stage_split_table(site_metrics: Iterable[Row]) -> pd.DataFrame:
    """Per site, what the SSL and fine-tuning stages have spent and the share each may spend.

    Values are those of the site's last trained round in the run (each site reports both
    stages' cumulative epsilon from its own ledger with every round). Empty when no site
    reported them.

    Returns
    -------
    pandas.DataFrame
        Indexed by site; columns are the labels of :data:`STAGE_COLUMNS`.
    """
    rows = list(site_metrics)
    columns = {}
    for metric, label in STAGE_COLUMNS.items():
        table = metric_table(rows, TRAIN, metric)
        if not table.empty:
            columns[label] = table.ffill().iloc[-1]
    if not columns:
        return pd.DataFrame(columns=list(STAGE_COLUMNS.values()))
    frame = pd.DataFrame(columns)
    frame.index.name = "site"
    return frame


def stage_shares(site_metrics: Iterable[Row]) -> pd.DataFrame:
    """Each stage's share of each site's budget, as configured (its cap) and as spent.

    Built on :func:`stage_split_table` (the sites' last reported values) and each site's last
    reported budget. A site without a split (``ssl_share`` unset) reports the whole budget as
    both caps: its configured shares are NaN, not 100% each.

    Returns
    -------
    pandas.DataFrame
        Long table, columns site, basis (``configured`` or ``spent``), stage (``SSL`` or
        ``fine-tuning``), epsilon and share (epsilon / the site's budget); empty when no site
        reported the split or its budget.
    """
    rows = list(site_metrics)
    split = stage_split_table(rows)
    budgets = metric_table(rows, TRAIN, "epsilon_budget")
    records = []
    for site, values in split.iterrows():
        budget = _last(budgets, str(site))
        if not budget:
            continue
        caps = [values.get(cap, math.nan) for _, cap in STAGES.values()]
        no_split = all(math.isclose(c, budget) for c in caps)
        for stage, (spent, cap) in STAGES.items():
            for basis, column in ((CONFIGURED, cap), (SPENT, spent)):
                epsilon = values.get(column, math.nan)
                share = math.nan if basis == CONFIGURED and no_split else epsilon / budget
                records.append({"site": site, "basis": basis, "stage": stage, "epsilon": epsilon,
                                "share": share})
    return pd.DataFrame.from_records(records, columns=["site", "basis", "stage", "epsilon", "share"])
