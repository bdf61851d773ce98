"""Pointing game of the diagnosis saliency maps against the site's ground-truth lesion masks.

For every (study, finding) whose ground-truth mask (``truth/masks/<accession>.npz``, read only
here, at the site) is non-empty on the cache grid, the SmoothGrad map of that finding
(:mod:`client_site.downstream.saliency`) scores a hit when its maximum lies within
``tolerance`` voxels of the lesion (:func:`client_site.clinical_metrics.pointing_hit`; Zhang et
al., ECCV 2016). Masks are brought from the series' native grid onto the cache grid with the
native geometry that ingestion records in ``cache/index.json`` (:func:`preprocess_mask`).

A lesion that the cache's centred crop cuts away entirely is not scored (and counted). A cache
ingested before the native geometry was recorded gives a NaN score with the reason logged.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from client_site.clinical_metrics import pointing_hit
from client_site.downstream.saliency import SaliencyConfig, saliency_maps
from client_site.findings import FINDINGS
from client_site.ingestion.preprocess import PreprocessConfig, preprocess_mask
from client_site.layout import SiteLayout
from client_site.pseudonym import load_or_create_salt, pseudonymize

logger = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 1
"""Voxels (Chebyshev) between the saliency peak and the lesion that still count as a hit: the
cache grid is coarse (5-16 mm voxels), and a lesion's partial-volume edge may fall in the next
voxel. Zhang et al. allow 15 pixels at 224 x 224."""


@dataclass(frozen=True)
class PointingResult:
    """Outcome of :func:`site_pointing_game`.

    Attributes
    ----------
    score : float
        Hits / pairs in [0, 1]; NaN when no pair could be scored.
    pairs : int
        (study, finding) pairs scored.
    outside_crop : int
        Pairs not scored because the lesion lies outside the cache's cropped field of view.
    unmapped_studies : int
        Studies left out because their masks cannot be mapped: ``index.json`` has no native
        geometry for them, or the cached series is not the one the masks describe.
    reason : str | None
        Why the score is NaN; None otherwise.
    hits : tuple[bool, ...]
        Hit or miss of each scored pair (for a bootstrap CI of the score).
    """

    score: float
    pairs: int
    outside_crop: int = 0
    unmapped_studies: int = 0
    reason: str | None = None
    hits: tuple[bool, ...] = ()


def site_pointing_game(
    model: nn.Module, site_dir: Path, study_keys: Collection[str] | None = None, *,
    tolerance: int = DEFAULT_TOLERANCE, saliency: SaliencyConfig | None = None,
) -> PointingResult:
    """Pointing game of ``model``'s diagnosis saliency over a site's studies with lesion masks.

    Parameters
    ----------
    model : nn.Module
        A model with ``diagnosis_logits`` (:class:`~client_site.downstream.model.ClinicalMedMPT`).
    site_dir : Path
        The site directory (ingested; ``truth/masks/`` holds the ground truth).
    study_keys : Collection[str] | None
        Pseudonymous keys of the studies to score, e.g. the held-out patients' studies
        (default: None = every cached study with a mask file).
    tolerance : int
        See :data:`DEFAULT_TOLERANCE` (default: 1 voxel).
    saliency : SaliencyConfig | None
        SmoothGrad settings (default: ``SaliencyConfig()``).

    Returns
    -------
    PointingResult
        The score, the number of pairs and, when NaN, the reason (also logged as a warning).
    """
    layout = SiteLayout(Path(site_dir))
    masks_dir = layout.root / "truth" / "masks"
    index = json.loads((layout.cache_dir / "index.json").read_text(encoding="utf-8"))
    config = PreprocessConfig.from_dict(index["preprocess"])
    studies: dict[str, dict[str, Any]] = {s["study_key"]: s for s in index["studies"]}
    salt = load_or_create_salt(layout.root)
    saliencies: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    outside = unmapped = no_geometry = 0
    for path in sorted(masks_dir.glob("*.npz")) if masks_dir.is_dir() else []:
        study = studies.get(pseudonymize("study", path.stem, salt))
        if study is None or (study_keys is not None and study["study_key"] not in study_keys):
            continue
        if not isinstance(study.get("native"), dict):
            unmapped += 1
            no_geometry += 1
            continue
        mapped = _cache_grid_masks(path, study, config)
        if mapped is None:
            unmapped += 1
            continue
        outside += sum(1 for m in mapped.values() if not m.any())
        mapped = {name: m for name, m in mapped.items() if m.any()}
        if not mapped:
            continue
        volume = torch.from_numpy(np.load(layout.cache_dir / study["volume"]).astype(np.float32))
        maps = saliency_maps(model, volume, findings=list(mapped), config=saliency)
        saliencies.extend(maps[name] for name in mapped)
        masks.extend(mapped.values())
    if not masks:
        reason = _no_pairs_reason(masks_dir, no_geometry, unmapped, outside)
        logger.warning("pointing game not computed: %s", reason)
        return PointingResult(score=math.nan, pairs=0, outside_crop=outside, unmapped_studies=unmapped,
                              reason=reason)
    if no_geometry:
        logger.warning("pointing game: %d stud(ies) without native geometry in index.json left out; "
                       "re-run `fedmpt ingest` to record it", no_geometry)
    hits = tuple(pointing_hit(s, m, tolerance=tolerance) for s, m in zip(saliencies, masks))
    score = sum(hits) / len(hits)  # = pointing_game(saliencies, masks): every mask here is non-empty
    logger.info("pointing game %.3f over %d (study, finding) pairs (%d lesion(s) outside the crop, "
                "%d unmapped stud(ies))", score, len(masks), outside, unmapped)
    return PointingResult(score=score, pairs=len(masks), outside_crop=outside, unmapped_studies=unmapped,
                          hits=hits)


def _cache_grid_masks(path: Path, study: dict[str, Any], config: PreprocessConfig) -> dict[str, np.ndarray] | None:
    """The study's truth masks (FINDINGS order) mapped onto the cache grid; None when they do not
    lie on the cached series' native grid (ingestion selected another series of the study)."""
    native = study["native"]
    affine, shape = np.asarray(native["affine"], dtype=np.float64), tuple(native["shape"])
    out = {}
    with np.load(path, allow_pickle=False) as stored:
        for name in (f for f in FINDINGS if f in stored.files):
            mask = stored[name]
            if mask.shape != shape:
                logger.warning("a study's truth masks have shape %s but its cached series %s: they describe "
                               "another series; the study is left out of the pointing game", mask.shape, shape)
                return None
            out[name] = preprocess_mask(mask, affine, config)
    return out


def _no_pairs_reason(masks_dir: Path, no_geometry: int, unmapped: int, outside: int) -> str:
    if not masks_dir.is_dir():
        return f"the site has no ground-truth masks ({masks_dir} is missing)"
    if no_geometry:
        return (f"{no_geometry} stud(ies) with masks lack the native geometry in cache/index.json "
                "(ingested by an older version); re-run `fedmpt ingest`")
    if unmapped:
        return f"the masks of {unmapped} stud(ies) describe a series other than the cached one"
    if outside:
        return f"all {outside} lesion(s) lie outside the cache's cropped field of view"
    return "no scored study has a lesion"
