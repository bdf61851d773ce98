"""The ledger refuses rounds past the budget, also after a restart, and detects tampering."""

import json

import pytest

from privacy.accountant import epsilon_of
from privacy.budget import PrivacyBudget
from privacy.errors import BudgetExceededError, LedgerCorruptedError
from privacy.ledger import PrivacyLedger

ROUND = {"noise_multiplier": 1.0, "sample_rate": 0.1, "steps": 20}


def _spend_until_refused(ledger, budget, run_id="r1"):
    done = 0
    with pytest.raises(BudgetExceededError):
        while done < 100:
            ledger.reserve(run_id=run_id, round=done + 1, budget=budget, **ROUND)
            done += 1
    return done


def test_ledger_epsilon_equals_opacus_and_grows(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.jsonl")
    budget = PrivacyBudget(epsilon=50.0, delta=1e-5)
    eps = []
    for rnd in (1, 2, 3):
        ledger.reserve(run_id="r", round=rnd, budget=budget, **ROUND)
        eps.append(ledger.epsilon(delta=1e-5))
    assert eps[0] < eps[1] < eps[2]
    expected = epsilon_of([(1.0, 0.1, 20)] * 3, delta=1e-5)
    assert eps[-1] == pytest.approx(expected, rel=1e-9)


def test_round_past_budget_is_refused_also_after_restart(tmp_path):
    path = tmp_path / "ledger.jsonl"
    budget = PrivacyBudget(epsilon=6.0, delta=1e-5)
    accepted = _spend_until_refused(PrivacyLedger(path), budget)
    assert accepted == 2  # 4.22, 5.39 fit in 6.0; the third (6.33) does not
    spent = PrivacyLedger(path).epsilon(delta=1e-5)
    assert spent <= budget.epsilon
    # A restarted site reads the same history and still refuses.
    with pytest.raises(BudgetExceededError):
        PrivacyLedger(path).reserve(run_id="r2", round=1, budget=budget, **ROUND)
    assert PrivacyLedger(path).epsilon(delta=1e-5) == spent


def test_edited_ledger_is_detected(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger = PrivacyLedger(path)
    budget = PrivacyBudget(epsilon=50.0, delta=1e-5)
    for rnd in (1, 2):
        ledger.reserve(run_id="r", round=rnd, budget=budget, **ROUND)
    lines = path.read_text().splitlines()
    first = json.loads(lines[0])
    first["steps"] = 1  # someone tries to make the site look less spent
    path.write_text("\n".join([json.dumps(first, sort_keys=True), lines[1]]) + "\n")
    with pytest.raises(LedgerCorruptedError, match="hash chain"):
        PrivacyLedger(path)


def test_torn_last_line_is_kept_aside_not_lost(tmp_path):
    path = tmp_path / "ledger.jsonl"
    budget = PrivacyBudget(epsilon=50.0, delta=1e-5)
    PrivacyLedger(path).reserve(run_id="r", round=1, budget=budget, **ROUND)
    with open(path, "a") as handle:
        handle.write('{"event": "segment_sta')  # crash mid-append
    ledger = PrivacyLedger(path)
    assert len(ledger.entries) == 1
    torn = list(tmp_path.glob("ledger.jsonl.torn-*"))
    assert len(torn) == 1 and torn[0].read_text() == '{"event": "segment_sta'
    ledger.reserve(run_id="r", round=2, budget=budget, **ROUND)
    assert len(PrivacyLedger(path).entries) == 2


def test_ledger_records_which_stage_spent_what(tmp_path):
    # Prepare
    ledger = PrivacyLedger(tmp_path / "ledger.jsonl")
    budget = PrivacyBudget(epsilon=50.0, delta=1e-5)
    # Execute
    ledger.reserve(run_id="pre", round=1, budget=budget, stage="ssl", **ROUND)
    ledger.reserve(run_id="ft", round=1, budget=budget, stage="fine-tuning", **ROUND)
    ledger.reserve(run_id="ft", round=2, budget=budget, stage="fine-tuning", **ROUND)
    by_stage = PrivacyLedger(tmp_path / "ledger.jsonl").stage_epsilons(delta=1e-5)  # re-read from disk
    # Assert
    assert [e["stage"] for e in ledger.entries] == ["ssl", "fine-tuning", "fine-tuning"]
    assert list(by_stage) == ["ssl", "fine-tuning"]
    assert by_stage["ssl"] == pytest.approx(epsilon_of([(1.0, 0.1, 20)], delta=1e-5), rel=1e-9)
    assert by_stage["fine-tuning"] == pytest.approx(epsilon_of([(1.0, 0.1, 20)] * 2, delta=1e-5), rel=1e-9)
    assert ledger.epsilon(delta=1e-5) <= sum(by_stage.values())  # the stages compose
