"""Shared by the PACS tests: what was uploaded to the PACS and what a pull must have brought."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from client_site.layout import SiteLayout


@dataclass(frozen=True)
class Uploaded:
    """One file put into the PACS: where it came from and a few of its header values."""

    path: Path
    study_uid: str
    study_date: str
    modality: str
    description: str
    accession: str


def expected(uploaded: list[Uploaded], *, since: str = "", description: str = "") -> list[Uploaded]:
    """What a pull with these filters must bring: every CT series matching ``description`` and every
    SR series of the studies with such a series and a study date from ``since`` on."""
    ct_studies = {u.study_uid for u in uploaded if u.modality == "CT" and u.study_date >= since
                  and description.lower() in u.description.lower()}
    return [u for u in uploaded if u.study_uid in ct_studies
            and (u.modality == "SR" or (u.modality == "CT" and description.lower() in u.description.lower()))]


def pulled_files(site_dir: Path) -> list[Path]:
    return sorted(p for p in SiteLayout(site_dir).pacs_dir.rglob("*.dcm"))


def dataset_part(data: bytes) -> bytes:
    """A Part-10 file's bytes after its File Meta group (what DIMSE carries; the receiver writes the meta)."""
    assert data[128:132] == b"DICM" and data[132:136] == b"\x02\x00\x00\x00"
    (group_length,) = struct.unpack("<I", data[140:144])
    return data[144 + group_length:]
