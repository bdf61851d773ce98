"""Atomic writes leave the previous file intact when a write is interrupted, and are durable."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import IO

import numpy as np
import pytest

from infra import atomic_files


def test_failed_replace_keeps_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    target = tmp_path / "index.json"
    atomic_files.write_json_atomic(target, {"v": 1})

    def _interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", _interrupted)
    # Execute
    with pytest.raises(KeyboardInterrupt):
        atomic_files.write_json_atomic(target, {"v": 2})
    # Assert
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["index.json"]


def test_mode_is_set_before_the_first_byte(tmp_path: Path) -> None:
    # Prepare
    seen: list[int] = []

    def _write(handle: IO[bytes]) -> None:
        seen.append(stat.S_IMODE(os.fstat(handle.fileno()).st_mode))
        handle.write(b"secret")

    # Execute
    atomic_files.write_atomic(tmp_path / "key", _write, mode=atomic_files.PRIVATE_MODE)
    # Assert
    assert seen == [0o600]
    assert stat.S_IMODE((tmp_path / "key").stat().st_mode) == 0o600


def test_file_and_folder_are_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    synced: list[bool] = []
    real_fsync = os.fsync

    def _record(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", _record)
    # Execute
    atomic_files.write_bytes_atomic(tmp_path / "sub" / "a.bin", b"x")
    # Assert: the file first, then the folder holding the new name
    assert synced == [False, True]


def test_skip_if_same_leaves_the_file_alone(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    atomic_files.write_json_atomic(target, {"v": 1})
    os.utime(target, (0, 0))
    atomic_files.write_json_atomic(target, {"v": 1}, skip_if_same=True)
    assert target.stat().st_mtime == 0
    atomic_files.write_json_atomic(target, {"v": 2}, skip_if_same=True)
    assert json.loads(target.read_text()) == {"v": 2}


def test_npy_round_trip_and_stale_cleanup(tmp_path: Path) -> None:
    array = np.arange(6, dtype=np.float16).reshape(2, 3)
    atomic_files.write_npy_atomic(tmp_path / "a.npy", array)
    (tmp_path / "old.npy").write_bytes(b"x")
    (tmp_path / ".a.npy.123.tmp").write_bytes(b"x")
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), array)
    assert atomic_files.remove_stale(tmp_path, {"a.npy"}, ".npy") == 2
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]
