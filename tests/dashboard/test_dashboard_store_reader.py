"""dashboard.store_reader and dashboard.workdir: reading the store, its failures, the workdir."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.results_store import ResultsStore
from dashboard.errors import StoreMissingError, StoreReadError
from dashboard.store_reader import load_run, load_runs, store_signature
from dashboard.workdir import WORKDIR_ENV, demo_commands, resolve_workdir, store_path


def test_missing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreMissingError):
        load_runs(store_path(tmp_path))
    assert not (tmp_path / "aggregator").exists()  # reading never creates the store


@pytest.mark.parametrize("content", [b"this is not sqlite" * 100, b""])
def test_corrupt_or_empty_store(tmp_path: Path, content: bytes) -> None:
    path = store_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(StoreReadError, match="not a readable results store"):
        load_runs(path)
    assert path.read_bytes() == content  # untouched


def test_load_run_reads_only_that_run(workdir: Path) -> None:
    path = store_path(workdir)
    runs = load_runs(path)
    old = load_run(path, next(r for r in runs if r["run_id"] == "run-old"))
    assert old.run_id == "run-old"
    assert old.site_metrics == [] and len(old.participation) == 1


def test_signature_changes_on_write(workdir: Path) -> None:
    path = store_path(workdir)
    before = store_signature(path)
    store = ResultsStore(path)
    store.record_global_metrics("run-new", 4, "train", {"train_loss": 0.1})
    store.close()
    assert store_signature(path) != before
    assert store_signature(workdir / "nothing.sqlite") == ((-1, -1), (-1, -1))


def test_resolve_workdir_prefers_the_argument() -> None:
    env = {WORKDIR_ENV: "/from/env"}
    assert resolve_workdir(["--workdir", "/from/arg"], env) == Path("/from/arg")
    assert resolve_workdir(["-q", "tests/dashboard"], env) == Path("/from/env")
    assert resolve_workdir(["--w", "x"], {}) is None  # no abbreviation of --workdir
    assert resolve_workdir([], {WORKDIR_ENV: "  "}) is None


def test_demo_commands() -> None:
    assert demo_commands(Path("wd")) == ("fedmpt demo --workdir wd", "make demo WORKDIR=wd")
