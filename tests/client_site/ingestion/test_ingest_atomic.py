"""Atomic writes leave the previous file intact when a write is interrupted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from client_site.ingestion import atomic


def test_failed_replace_keeps_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    target = tmp_path / "index.json"
    atomic.write_json_atomic(target, {"v": 1})

    def _interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", _interrupted)
    # Execute
    with pytest.raises(KeyboardInterrupt):
        atomic.write_json_atomic(target, {"v": 2})
    # Assert
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["index.json"]


def test_npy_round_trip_and_stale_cleanup(tmp_path: Path) -> None:
    array = np.arange(6, dtype=np.float16).reshape(2, 3)
    atomic.write_npy_atomic(tmp_path / "a.npy", array)
    (tmp_path / "old.npy").write_bytes(b"x")
    (tmp_path / ".a.npy.123.tmp").write_bytes(b"x")
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), array)
    assert atomic.remove_stale(tmp_path, {"a.npy"}, ".npy") == 2
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]
