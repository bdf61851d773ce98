"""Threat: someone at the site (or a faulty restore) cuts entries from the end of the privacy
ledger, or puts back an older copy, so that the site looks less spent than it is.

Defence: a head record beside the ledger anchors its length and last hash after every append
(:mod:`privacy.ledger_file`); a shorter or different ledger is refused with a message naming
the file and what to do, and an entry that was fsynced is never dropped.
"""

import shutil

import pytest

from privacy.budget import PrivacyBudget
from privacy.errors import LedgerCorruptedError
from privacy.ledger import PrivacyLedger
from privacy.ledger_file import head_path

ROUND = {"noise_multiplier": 1.0, "sample_rate": 0.1, "steps": 20}
BUDGET = PrivacyBudget(epsilon=50.0, delta=1e-5)


def _spent_ledger(path, rounds=3):
    ledger = PrivacyLedger(path)
    for round in range(1, rounds + 1):
        ledger.reserve(run_id="r", round=round, budget=BUDGET, **ROUND)
    return ledger.epsilon(delta=BUDGET.delta)


def test_deleting_the_last_entry_is_refused(tmp_path):
    # Prepare
    path = tmp_path / "ledger.jsonl"
    _spent_ledger(path)
    lines = path.read_text().splitlines(keepends=True)
    # Execute
    path.write_text("".join(lines[:-1]))
    # Assert
    with pytest.raises(LedgerCorruptedError, match=r"ledger\.jsonl holds 2 entries .* records 3.*Restore"):
        PrivacyLedger(path)


def test_deleting_only_the_final_newline_keeps_the_entry(tmp_path):
    # Prepare
    path = tmp_path / "ledger.jsonl"
    spent = _spent_ledger(path)
    # Execute
    path.write_bytes(path.read_bytes()[:-1])
    ledger = PrivacyLedger(path)
    # Assert: the last entry still counts and the file is whole again
    assert ledger.epsilon(delta=BUDGET.delta) == pytest.approx(spent)
    assert len(ledger.entries) == 3 and path.read_bytes().endswith(b"\n")


def test_rolling_back_to_an_older_copy_is_refused(tmp_path):
    # Prepare
    path = tmp_path / "ledger.jsonl"
    _spent_ledger(path, rounds=1)
    shutil.copy(path, tmp_path / "backup.jsonl")
    PrivacyLedger(path).reserve(run_id="r", round=2, budget=BUDGET, **ROUND)
    # Execute
    shutil.copy(tmp_path / "backup.jsonl", path)
    # Assert
    with pytest.raises(LedgerCorruptedError, match="removed from the end"):
        PrivacyLedger(path)


def test_replacing_the_ledger_by_another_chain_is_refused(tmp_path):
    # Prepare: two ledgers of the same length, one with smaller segments
    path, other = tmp_path / "ledger.jsonl", tmp_path / "other" / "ledger.jsonl"
    _spent_ledger(path, rounds=2)
    cheap = PrivacyLedger(other)
    for round in (1, 2):
        cheap.reserve(run_id="r", round=round, budget=BUDGET, noise_multiplier=5.0, sample_rate=0.01, steps=1)
    # Execute
    shutil.copy(other, path)
    # Assert
    with pytest.raises(LedgerCorruptedError, match="replaced by another copy"):
        PrivacyLedger(path)


def test_deleting_the_head_is_refused_until_a_person_adopts_the_ledger(tmp_path):
    # Prepare
    path = tmp_path / "ledger.jsonl"
    _spent_ledger(path, rounds=1)
    head_path(path).unlink()
    # Execute / Assert
    with pytest.raises(LedgerCorruptedError, match="no head record.*--adopt"):
        PrivacyLedger(path)


def test_an_entry_fsynced_before_a_crash_is_kept(tmp_path):
    # Prepare: the head as it was before the last append (crash between append and head write)
    path = tmp_path / "ledger.jsonl"
    _spent_ledger(path, rounds=1)
    old_head = head_path(path).read_bytes()
    PrivacyLedger(path).reserve(run_id="r", round=2, budget=BUDGET, **ROUND)
    head_path(path).write_bytes(old_head)
    # Execute
    ledger = PrivacyLedger(path)
    # Assert: kept and anchored again, so cutting it now is caught
    assert len(ledger.entries) == 2
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:1]))
    with pytest.raises(LedgerCorruptedError):
        PrivacyLedger(path)


def test_cli_names_the_file_and_adopt_anchors_a_checked_ledger(make_site):
    # Prepare: a ledger whose head is gone
    from typer.testing import CliRunner

    from cli.main import app
    from client_site.layout import SiteLayout

    site_dir = make_site(epsilon=8.0)
    path = SiteLayout(site_dir).ledger_path
    _spent_ledger(path, rounds=1)
    head_path(path).unlink()
    runner = CliRunner()
    # Execute
    refused = runner.invoke(app, ["privacy", "ledger", str(site_dir)])
    adopted = runner.invoke(app, ["privacy", "ledger", str(site_dir), "--adopt"])
    # Assert
    assert refused.exit_code == 1 and str(path) in refused.output and "Traceback" not in refused.output
    assert adopted.exit_code == 0 and "anchored 1 ledger entries" in adopted.output
    assert len(PrivacyLedger(path).entries) == 1
