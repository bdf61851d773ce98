"""Walk a PACS export folder: every file, any name, directory links followed at most once."""

from __future__ import annotations

import logging
import os
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


def walk_files(root: Path, site_dir: Path) -> list[WalkedFile]:
    """List every file below ``root`` in sorted order, following directory links at most once.

    Directory symlinks are followed, but a directory whose real location was already visited
    (a loop, or a second link to the same folder) is skipped with a warning. A file reached
    twice (a file symlink, or a folder reached twice) is listed again with a ``DUPLICATE_FILE``
    rejection, so every path seen is reported exactly once; real files win over links.

    Parameters
    ----------
    root : Path
        Folder to walk (``site_dir / "dicom"``).
    site_dir : Path
        Site directory; reported paths are relative to it.
    """
    seen_dirs: set[tuple[int, int]] = set()
    found: list[tuple[Path, str, tuple[int, int] | None, bool]] = []  # path, rel, (dev, inode), is_link

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
        for name in filenames:
            path = Path(dirpath) / name
            try:
                file_stat = path.stat()
                ident: tuple[int, int] | None = (file_stat.st_dev, file_stat.st_ino)
            except OSError:
                ident = None
            found.append((path, _relative(path, site_dir), ident, _through_link(path, root)))
    owner: dict[tuple[int, int], str] = {}
    for _, rel, ident, _ in sorted(found, key=lambda f: (f[3], f[1])):  # real paths claim first
        if ident is not None:
            owner.setdefault(ident, rel)
    walked = []
    for path, rel, ident, _ in sorted(found, key=lambda f: f[1]):
        if ident is None:
            rejection: FileRejected | None = FileRejected(
                RejectCode.UNREADABLE_FILE, "broken symbolic link or unreadable file (stat failed)")
        elif owner[ident] != rel:
            rejection = FileRejected(
                RejectCode.DUPLICATE_FILE, "same file as another path already read (reached again through a symbolic link)")
        else:
            rejection = None
        walked.append(WalkedFile(path, rel, rejection))
    return walked


def _through_link(path: Path, root: Path) -> bool:
    """Whether ``path`` or any folder between ``root`` and it is a symbolic link."""
    current = path
    while current != root and current != current.parent:
        if current.is_symlink():
            return True
        current = current.parent
    return False


def _relative(path: Path, site_dir: Path) -> str:
    try:
        return path.relative_to(site_dir).as_posix()
    except ValueError:
        return path.as_posix()
