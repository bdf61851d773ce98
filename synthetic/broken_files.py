"""A few broken files per site, as real PACS exports have them: an interrupted transfer, OS litter, logs.

Deterministic (no random draws, so the rest of the site does not change with them) and free of
PHI in their names. Ingestion must report each one as rejected with its reason and carry on.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

EXPORT_LOG = "Export finished: {n} studies, 0 errors\nDestination: removable media\n"


def write_broken_files(site_dir: Path) -> list[Path]:
    """Write the broken files into ``site_dir/dicom``; returns their paths.

    - ``<study>/SE002/IMxxxxx.dcm.part``: the first 60 % of a slice (a transfer cut short);
    - ``<study>/SE002/IM00000``: an empty file;
    - ``<study>/export.log``: a text file;
    - ``Thumbs.db``: 512 bytes of binary litter.

    Raises
    ------
    FileNotFoundError
        If ``site_dir/dicom`` holds no study folder yet (write the studies first).
    """
    dicom = Path(site_dir) / "dicom"
    studies = sorted(p for p in dicom.glob("ST*") if (p / "SE002").is_dir())
    if not studies:
        raise FileNotFoundError(f"{dicom} holds no ST*/SE002 study folder; generate the studies first")
    first, second, third = (studies * 3)[:3]
    source = sorted((first / "SE002").glob("IM*.dcm"))[0]
    data = source.read_bytes()
    partial = source.with_name(source.name + ".part")
    partial.write_bytes(data[: len(data) * 3 // 5])
    empty = third / "SE002" / "IM00000"
    empty.write_bytes(b"")
    log = second / "export.log"
    log.write_text(EXPORT_LOG.format(n=len(studies)), encoding="utf-8")
    litter = dicom / "Thumbs.db"
    block = hashlib.sha256(site_dir.name.encode()).digest()
    litter.write_bytes(b"".join(hashlib.sha256(block + bytes([i])).digest() for i in range(16)))
    return [partial, empty, log, litter]
