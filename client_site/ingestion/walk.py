"""Walk a PACS export folder: every file, any name, directory links followed at most once."""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from client_site.ingestion.errors import FileRejected, RejectCode

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WalkedFile:
    """A file found under ``dicom/``; ``rejection`` is set when it cannot even be opened.

    ``size`` and ``mtime_ns`` (-1 when unknown) are the change signature used by the incremental
    cache. A folder that cannot be listed is reported as one entry whose path ends in ``/``.
    """

    path: Path
    rel_path: str
    rejection: FileRejected | None = None
    size: int = -1
    mtime_ns: int = -1


def display_path(path: Path, site_dir: Path) -> str:
    """``path`` relative to ``site_dir`` as valid UTF-8 text.

    A file name that is not valid UTF-8 (Latin-1 or GBK exports, say) reaches Python with
    surrogate escapes, which cannot be written to JSON; its undecodable bytes are shown as ``\\xNN``.
    """
    try:
        rel = path.relative_to(site_dir).as_posix()
    except ValueError:
        rel = path.as_posix()
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


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
    found: list[tuple[Path, str, os.stat_result | None, bool]] = []  # path, rel, stat, reached via a link
    unlisted: list[WalkedFile] = []
    via_link: dict[str, bool] = {str(root): False}  # folder -> reached through a directory link

    def _on_error(error: OSError) -> None:
        folder = Path(error.filename) if error.filename else root
        logger.warning("cannot list a folder under %s: %s", root, error.strerror)
        unlisted.append(WalkedFile(folder, display_path(folder, site_dir).rstrip("/") + "/", FileRejected(
            RejectCode.UNREADABLE_FILE,
            f"folder cannot be listed ({error.strerror}): the files in it are not ingested; check its permissions")))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=_on_error):
        stat = os.stat(dirpath)
        if (stat.st_dev, stat.st_ino) in seen_dirs:
            logger.warning("skipping a folder already visited through a symbolic link")
            dirnames[:] = []
            continue
        seen_dirs.add((stat.st_dev, stat.st_ino))
        dirnames.sort()
        linked_dir = via_link.get(dirpath, False)
        for name in dirnames:
            child = os.path.join(dirpath, name)
            via_link[child] = linked_dir or os.path.islink(child)
        rel_dir = display_path(Path(dirpath), site_dir)
        for name in filenames:
            full = os.path.join(dirpath, name)
            try:
                file_stat: os.stat_result | None = os.stat(full)
            except OSError:
                file_stat = None
            rel = f"{rel_dir}/{os.fsencode(name).decode('utf-8', 'backslashreplace')}"
            found.append((Path(full), rel, file_stat, linked_dir))
    inodes = Counter((f[2].st_dev, f[2].st_ino) for f in found if f[2] is not None)
    # Only a file reached twice needs to know whether this path is a link (one lstat, not one per file).
    found = [(p, rel, st, linked or (st is not None and inodes[(st.st_dev, st.st_ino)] > 1 and os.path.islink(p)))
             for p, rel, st, linked in found]
    owner: dict[tuple[int, int], str] = {}
    for _, rel, file_stat, _ in sorted(found, key=lambda f: (f[3], f[1])):  # real paths claim first
        if file_stat is not None:
            owner.setdefault((file_stat.st_dev, file_stat.st_ino), rel)
    walked = []
    for path, rel, file_stat, _ in sorted(found, key=lambda f: f[1]):
        if file_stat is None:
            walked.append(WalkedFile(path, rel, FileRejected(
                RejectCode.UNREADABLE_FILE, "broken symbolic link or unreadable file (stat failed)")))
        elif owner[(file_stat.st_dev, file_stat.st_ino)] != rel:
            walked.append(WalkedFile(path, rel, FileRejected(
                RejectCode.DUPLICATE_FILE, "same file as another path already read (reached again through a symbolic link)")))
        else:
            walked.append(WalkedFile(path, rel, None, file_stat.st_size, file_stat.st_mtime_ns))
    return sorted(walked + unlisted, key=lambda w: w.rel_path)

