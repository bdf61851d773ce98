"""Atomic writes: a temporary file in the target folder, fsync, then ``os.replace``.

An interrupted run therefore leaves either the old file or the new one, never half of one.
Temporary files start with ``.`` and end with ``.tmp`` so a later run can clean them up.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

TMP_SUFFIX = ".tmp"


def _write_atomic(path: Path, write: Callable[[IO[bytes]], None], mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: Any, *, skip_if_same: bool = False, mode: int = 0o644) -> None:
    """Write ``payload`` as UTF-8 JSON (indented, non-ASCII kept) to ``path`` atomically.

    With ``skip_if_same`` an existing file with exactly these bytes is left alone (no fsync, no
    new mtime), which keeps a run over unchanged inputs cheap. ``mode`` is the file's permission
    bits (default: 0o644; 0o600 for a file only its owner may read).
    """
    data = json.dumps(payload, ensure_ascii=False, indent=2, allow_nan=False).encode("utf-8")
    if skip_if_same and path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return

    def _write(handle: IO[bytes]) -> None:
        handle.write(data)

    _write_atomic(path, _write, mode)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""

    def _write(handle: IO[bytes]) -> None:
        handle.write(data)

    _write_atomic(path, _write)


def write_npy_atomic(path: Path, array: np.ndarray) -> None:
    """Save ``array`` in ``.npy`` format to ``path`` atomically (no pickling)."""
    _write_atomic(path, lambda handle: np.save(handle, array, allow_pickle=False))


def remove_stale(folder: Path, keep: set[str], suffix: str) -> int:
    """Delete files in ``folder`` ending in ``suffix`` (or leftover temporaries) not named in ``keep``.

    Returns
    -------
    int
        How many files were removed.
    """
    removed = 0
    if not folder.is_dir():
        return 0
    for entry in folder.iterdir():
        stale_tmp = entry.name.startswith(".") and entry.name.endswith(TMP_SUFFIX)
        if entry.is_file() and (stale_tmp or (entry.name.endswith(suffix) and entry.name not in keep)):
            entry.unlink()
            removed += 1
    return removed
