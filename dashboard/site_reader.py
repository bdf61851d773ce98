"""The site-local case viewer's reads and its one write, all inside one site directory.

Reads ``SITE_DIR/site.toml``, ``cache/index.json``, ``cache/volumes/<key>.npy``,
``cache/explanations/<key>.npy``, ``cache/drafts/<key>.json`` and
``reference/drug_interactions.csv`` (docs/contracts.md); the one write, accepted reports, is in
``dashboard.accepted_reports``. Nothing here opens a network connection or any file outside the
site directory.
"""

from __future__ import annotations

import csv
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dashboard.errors import DashboardError
from infra.cache_index import CacheIndexError, CachedStudy, is_study_key, read_cache_index

__all__ = [
    "WINDOWS",
    "Draft",
    "SiteReadError",
    "Study",
    "check_key",
    "load_draft",
    "load_explanation",
    "load_index",
    "load_interactions",
    "load_volume",
    "site_name",
]

#: Channel order of a cached volume (docs/contracts.md section 4).
WINDOWS = ("lung", "mediastinum", "bone")



class SiteReadError(DashboardError):
    """A site file is missing its expected shape; the message says which and why."""


# The record of one cached study: the runtime's one type (infra.cache_index).
Study = CachedStudy


@dataclass(frozen=True)
class Draft:
    """A drafted report: findings, impression, recommended medications and warnings."""

    findings: str
    impression: str
    medications: list[str]
    warnings: list[str]


def _cache(site_dir: Path) -> Path:
    return Path(site_dir) / "cache"


def check_key(key: str) -> str:
    """``key`` if it can be a pseudonymous study key (a safe file name), else ``SiteReadError``."""
    if not is_study_key(key):
        raise SiteReadError(f"not a pseudonymous study key: {key!r}")
    return key


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SiteReadError(f"cannot read {path.name}: {e}") from e


def site_name(site_dir: Path) -> str:
    """The site's name from ``site.toml`` (``[site] name``), else the folder's name."""
    path = Path(site_dir) / "site.toml"
    try:
        with path.open("rb") as handle:
            name = tomllib.load(handle).get("site", {}).get("name")
    except (OSError, tomllib.TOMLDecodeError):
        name = None
    return str(name) if name else Path(site_dir).resolve().name


def load_index(site_dir: Path) -> list[Study]:
    """The studies of ``cache/index.json``, in file order.

    Raises
    ------
    FileNotFoundError
        When the site has not been ingested yet.
    SiteReadError
        When the index is unreadable or malformed.
    """
    try:
        return read_cache_index(_cache(site_dir))
    except CacheIndexError as e:
        raise SiteReadError(str(e)) from e


def _inside_cache(site_dir: Path, relative: str) -> Path:
    cache = _cache(site_dir).resolve()
    path = (cache / relative).resolve()
    if not path.is_relative_to(cache):
        raise SiteReadError(f"{relative!r} points outside the site's cache")
    return path


def load_volume(site_dir: Path, study: Study) -> np.ndarray:
    """The cached volume, memory-mapped: float16 (3, D, H, W) = (window, slice, row, col) in [0, 1].

    Raises
    ------
    SiteReadError
        Missing, unreadable or not of that shape.
    """
    path = _inside_cache(site_dir, study.volume)
    try:
        volume = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise SiteReadError(f"cannot read the volume of study {study.study_key}: {e}") from e
    if volume.ndim != 4 or volume.shape[0] != len(WINDOWS) or min(volume.shape) == 0:
        raise SiteReadError(
            f"the volume of study {study.study_key} has shape {volume.shape}, expected (3, D, H, W)"
        )
    return volume


def load_explanation(site_dir: Path, study_key: str, shape: tuple[int, int, int]) -> np.ndarray | None:
    """The interpretability map ``cache/explanations/<key>.npy``, (D, H, W) in [0, 1]; None if absent.

    Raises
    ------
    SiteReadError
        Unreadable, or its shape differs from the volume's ``shape``.
    """
    path = _cache(site_dir) / "explanations" / f"{check_key(study_key)}.npy"
    if not path.is_file():
        return None
    try:
        heat = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise SiteReadError(f"cannot read the interpretability map of {study_key}: {e}") from e
    if tuple(heat.shape) != tuple(shape):
        raise SiteReadError(
            f"the interpretability map of {study_key} has shape {heat.shape}, the volume {tuple(shape)}"
        )
    return heat


def _lines(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [str(value)]


def load_draft(site_dir: Path, study_key: str) -> Draft | None:
    """The drafted report ``cache/drafts/<key>.json``; None when there is none.

    Raises
    ------
    SiteReadError
        Unreadable or not a JSON object.
    """
    path = _cache(site_dir) / "drafts" / f"{check_key(study_key)}.json"
    if not path.is_file():
        return None
    payload = _read_json(path)
    if not isinstance(payload, dict):
        raise SiteReadError(f"{path.name} is not a JSON object")
    return Draft(
        findings=str(payload.get("findings") or ""),
        impression=str(payload.get("impression") or ""),
        medications=_lines(payload.get("medications")),
        warnings=_lines(payload.get("warnings")),
    )


def load_interactions(site_dir: Path) -> dict[frozenset[str], tuple[str, str]]:
    """``reference/drug_interactions.csv`` read by the site's one reader of it
    (:func:`client_site.clinical_metrics.load_interaction_table`); empty when the site has none."""
    from client_site.clinical_metrics import load_interaction_table

    path = Path(site_dir) / "reference" / "drug_interactions.csv"
    if not path.is_file():
        return {}
    try:
        return load_interaction_table(path)
    except (OSError, UnicodeDecodeError, csv.Error, ValueError, KeyError) as e:
        raise SiteReadError(f"cannot read {path.name}: {e}") from e
