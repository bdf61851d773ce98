"""An exclusive lock across processes on a file, held for a ``with`` block (``flock``)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infra.atomic_files import PRIVATE_MODE

LOCK_SUFFIX = ".lock"


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``path`` (on ``<path>.lock`` beside it) for the block.

    Every process that reads, checks and rewrites ``path`` takes this lock first, so none
    acts on what another is about to change. The lock goes when the block ends or the
    process dies.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + LOCK_SUFFIX), os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
