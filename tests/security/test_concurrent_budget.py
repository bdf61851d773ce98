"""Threat: two runs train at one site at the same time; each checks the budget against what it
read before the other wrote, so together they spend past it, and their interleaved appends
break the hash chain (after which the site cannot train at all).

Defence: the ledger's check and append happen under one exclusive file lock, against the
entries on disk at that moment (:meth:`privacy.ledger.PrivacyLedger.reserve`).
"""

import multiprocessing

from privacy.budget import PrivacyBudget
from privacy.errors import BudgetExceededError
from privacy.ledger import PrivacyLedger

ROUND = {"noise_multiplier": 1.0, "sample_rate": 0.1, "steps": 20}
BUDGET = PrivacyBudget(epsilon=5.0, delta=1e-5)  # one round (4.22) fits, two (5.39) do not


def _reserve_after_barrier(path, barrier, run_id, outcomes):
    ledger = PrivacyLedger(path)  # both processes have read the (empty) ledger ...
    barrier.wait()  # ... before either reserves
    try:
        ledger.reserve(run_id=run_id, round=1, budget=BUDGET, **ROUND)
        outcomes.put((run_id, "trained"))
    except BudgetExceededError:
        outcomes.put((run_id, "refused"))


def test_two_processes_cannot_together_overspend(tmp_path):
    # Prepare
    path = tmp_path / "ledger.jsonl"
    context = multiprocessing.get_context("fork")
    barrier, outcomes = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_reserve_after_barrier, args=(path, barrier, f"run-{i}", outcomes))
               for i in range(2)]
    # Execute
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    # Assert
    results = sorted(outcomes.get(timeout=5)[1] for _ in workers)
    assert results == ["refused", "trained"]
    ledger = PrivacyLedger(path)  # verifies the chain and the head
    assert len(ledger.entries) == 1
    assert ledger.epsilon(delta=BUDGET.delta) <= BUDGET.epsilon
