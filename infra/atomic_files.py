"""Atomic file writes: a temporary file beside the target, fsync, rename, fsync of the folder.

An interrupted write leaves either the old file or the new one, never half of one, and once a
write returns it survives a power cut (the file's bytes and the folder entry are both on disk).
The permission bits are set on the temporary file before any byte is written, so a secret is
never readable by others, not even for an instant. Temporary files start with ``.`` and end
with ``.tmp``; a failed write removes its own, and :func:`remove_stale` clears any a killed
process left behind.
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
PRIVATE_MODE = 0o600
"""Permission bits for files only their owner may read (keys, ledgers, user stores)."""


def fsync_directory(folder: Path) -> None:
    """Flush ``folder``'s entries (a rename or a new file in it) to disk."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, write: Callable[[IO[bytes]], None], *, mode: int = 0o644) -> None:
    """Write ``path`` atomically through ``write(handle)`` on a binary temporary file.

    Parameters
    ----------
    path : Path
        The file to create or replace; its folder is created if missing.
    write : Callable[[IO[bytes]], None]
        Writes the whole content to the handle it is given.
    mode : int
        Permission bits of the new file, set before writing (default: 0o644).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def write_bytes_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`write_atomic`)."""
    write_atomic(path, lambda handle: handle.write(data), mode=mode)


def write_json_atomic(path: Path, payload: Any, *, mode: int = 0o644, sort_keys: bool = False,
                      skip_if_same: bool = False) -> None:
    """Write ``payload`` as strict UTF-8 JSON (indented, non-ASCII kept, no NaN) atomically.

    Parameters
    ----------
    path : Path
        The file to create or replace.
    payload : Any
        JSON-serialisable value; NaN or infinity raise ``ValueError``.
    mode : int
        Permission bits (default: 0o644; :data:`PRIVATE_MODE` for owner-only files).
    sort_keys : bool
        Sort object keys, for files people diff (default: False).
    skip_if_same : bool
        Leave an existing file with exactly these bytes alone (no fsync, no new mtime), which
        keeps a run over unchanged inputs cheap (default: False).
    """
    text = json.dumps(payload, ensure_ascii=False, indent=2, allow_nan=False, sort_keys=sort_keys)
    data = (text + "\n").encode("utf-8")
    path = Path(path)
    if skip_if_same and path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    write_bytes_atomic(path, data, mode=mode)


def write_npy_atomic(path: Path, array: np.ndarray, *, mode: int = 0o644) -> None:
    """Save ``array`` in ``.npy`` format to ``path`` atomically (no pickling)."""
    write_atomic(path, lambda handle: np.save(handle, array, allow_pickle=False), mode=mode)


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
