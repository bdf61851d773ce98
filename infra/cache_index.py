"""The cache index, ``cache/index.json``: one record per cached study.

Ingestion writes it (:meth:`CachedStudy.to_json`); training, the downstream tasks and the
dashboard's case viewer read it through :func:`read_cache_index`, so they agree on its fields
(docs/contracts.md section 4). The records hold pseudonymous keys and de-identified text only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INDEX_FILE = "index.json"
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")  # a salted key; also a safe file name


def is_study_key(key: str) -> bool:
    """Whether ``key`` can be a pseudonymous study key (and so a safe file name)."""
    return bool(_KEY.match(key))


class CacheIndexError(ValueError):
    """``index.json`` is unreadable or a record lacks a field; the message names the file and study."""


@dataclass(frozen=True)
class CachedStudy:
    """One study of ``cache/index.json``.

    Attributes
    ----------
    study_key, patient_key : str
        Pseudonymous (salted) keys.
    volume : str
        Path of the ``.npy`` volume relative to the cache directory.
    report : str | None
        De-identified report body; None when the study has no report.
    language : str | None
        ``"en"``, ``"zh"`` or None.
    clinical : dict | None
        Clinical record (age, sex, symptoms, labs, current medications, medications), if any.
    native : dict | None
        The selected series' native grid, ``{"affine": 4x4, "shape": [z, y, x]}`` (default: None).
    """

    study_key: str
    patient_key: str
    volume: str
    report: str | None
    language: str | None
    clinical: dict[str, Any] | None
    native: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as ingestion writes it."""
        return {"study_key": self.study_key, "patient_key": self.patient_key, "volume": self.volume,
                "report": self.report, "language": self.language, "clinical": self.clinical, "native": self.native}

    @classmethod
    def from_json(cls, entry: Any) -> CachedStudy:
        """Parse one record.

        Raises
        ------
        ValueError
            If a required field is missing, a key is not a salted key, or a field has the wrong type.
        """
        if not isinstance(entry, dict):
            raise ValueError(f"a study is a {type(entry).__name__}, not an object")
        missing = [name for name in ("study_key", "patient_key", "volume") if not isinstance(entry.get(name), str)]
        if missing:
            raise ValueError(f"lacks required field(s) {', '.join(missing)}")
        if not is_study_key(entry["study_key"]):
            raise ValueError(f"study_key {entry['study_key']!r} is not a pseudonymous key")
        optional = {"report": str, "language": str, "clinical": dict, "native": dict}
        for name, kind in optional.items():
            if entry.get(name) is not None and not isinstance(entry[name], kind):
                raise ValueError(f"field {name} is a {type(entry[name]).__name__}, expected {kind.__name__} or null")
        return cls(study_key=entry["study_key"], patient_key=entry["patient_key"], volume=entry["volume"],
                   **{name: entry.get(name) for name in optional})


def read_cache_index(cache_dir: str | Path) -> list[CachedStudy]:
    """The studies of ``<cache_dir>/index.json``, in file order.

    Raises
    ------
    FileNotFoundError
        If the site has not been ingested (no index).
    CacheIndexError
        If the index is unreadable or a record is malformed (naming the study's position).
    """
    path = Path(cache_dir) / INDEX_FILE
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"no cache index at {path}; run ingestion first (fedmpt ingest SITE_DIR)") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CacheIndexError(f"{path}: cannot be read ({error}); re-run the ingest") from error
    studies = payload.get("studies") if isinstance(payload, dict) else None
    if not isinstance(studies, list):
        raise CacheIndexError(f"{path}: expected a 'studies' list, got {type(studies).__name__}")
    records = []
    for number, entry in enumerate(studies):
        try:
            records.append(CachedStudy.from_json(entry))
        except ValueError as error:
            raise CacheIndexError(f"{path}: study #{number} {error}") from error
    return records
