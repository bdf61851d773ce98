"""Walk a PACS export folder: every file, any name, directory links followed at most once."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from client_site.ingestion.errors import FileRejected, RejectCode

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WalkedFile:
    """A file found under ``dicom/``; ``rejection`` is set when it cannot even be opened."""

    path: Path
    rel_path: str
    rejection: FileRejected | None = None


def walk_files(root: Path, site_dir: Path) -> Iterator[WalkedFile]:
    """Yield every file below ``root`` in sorted order, following directory links at most once.

    Directory symlinks are followed, but a directory whose real location was already visited
    (a loop, or a second link to the same folder) is skipped with a warning. A file reached
    twice through links is yielded again with a ``DUPLICATE_FILE`` rejection, so that every
    path seen is reported exactly once.

    Parameters
    ----------
    root : Path
        Folder to walk (``site_dir / "dicom"``).
    site_dir : Path
        Site directory; reported paths are relative to it.
    """
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()

    def _on_error(error: OSError) -> None:
        logger.warning("cannot list a folder under %s: %s", root, error.strerror)

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=_on_error):
        stat = os.stat(dirpath)
        if (stat.st_dev, stat.st_ino) in seen_dirs:
            logger.warning("skipping %s: already visited through a symbolic link", dirpath)
            dirnames[:] = []
            continue
        seen_dirs.add((stat.st_dev, stat.st_ino))
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = _relative(path, site_dir)
            try:
                file_stat = path.stat()
            except OSError:
                yield WalkedFile(path, rel, FileRejected(
                    RejectCode.UNREADABLE_FILE, "broken symbolic link or unreadable file (stat failed)"))
                continue
            ident = (file_stat.st_dev, file_stat.st_ino)
            if ident in seen_files:
                yield WalkedFile(path, rel, FileRejected(
                    RejectCode.DUPLICATE_FILE,
                    "same file as another path already read (reached again through a symbolic link)"))
                continue
            seen_files.add(ident)
            yield WalkedFile(path, rel)


def _relative(path: Path, site_dir: Path) -> str:
    try:
        return path.relative_to(site_dir).as_posix()
    except ValueError:
        return path.as_posix()
