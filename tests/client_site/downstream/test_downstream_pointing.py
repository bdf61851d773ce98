"""Pointing game of the saliency maps on a tiny synthetic site, truth masks mapped to the cache grid."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from client_site.downstream import pointing
from client_site.downstream.model import ClinicalMedMPT
from client_site.downstream.pointing import site_pointing_game
from client_site.downstream.saliency import SaliencyConfig
from client_site.ingestion import ingest_site
from client_site.ingestion.preprocess import PreprocessConfig, preprocess_mask
from client_site.pseudonym import load_or_create_salt, pseudonymize
from synthetic import generate_consortium
from federation.presets import get_preset

TINY = get_preset("tiny")
FAST = SaliencyConfig(samples=2)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One hospital, 4 patients (seed 5: consolidation, ground-glass, emphysema and an effusion), tiny grid."""
    (site_dir,) = generate_consortium(tmp_path_factory.mktemp("pointing"), n_sites=1, patients_per_site=4, seed=5,
                                      matrix=64, progress=False, workers=1)
    ingest_site(site_dir, site_dir / "cache", config=TINY.preprocess, progress=False)
    return site_dir


def _cache_masks(site_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """Study key -> finding -> its truth mask on the cache grid (non-empty ones only)."""
    index = json.loads((site_dir / "cache" / "index.json").read_text(encoding="utf-8"))
    studies = {s["study_key"]: s for s in index["studies"]}
    config = PreprocessConfig.from_dict(index["preprocess"])
    salt = load_or_create_salt(site_dir)
    out: dict[str, dict[str, np.ndarray]] = {}
    for path in (site_dir / "truth" / "masks").glob("*.npz"):
        key = pseudonymize("study", path.stem, salt)
        native = np.asarray(studies[key]["native"]["affine"])
        with np.load(path) as masks:
            mapped = {name: preprocess_mask(masks[name], native, config) for name in masks.files}
        out[key] = {name: m for name, m in mapped.items() if m.any()}
    return out


def _oracle(site_dir: Path, *, inside: bool):
    """Saliency stand-in keyed by volume: peak inside the study's lesion, or at the voxel farthest from it."""
    masks = _cache_masks(site_dir)
    index = json.loads((site_dir / "cache" / "index.json").read_text(encoding="utf-8"))
    volumes = {key: np.load(site_dir / "cache" / s["volume"]).astype(np.float32)
               for s in index["studies"] if (key := s["study_key"]) in masks}

    def explain(model, volume, *, findings, config):
        key = next(k for k, v in volumes.items() if np.array_equal(v, volume.numpy()))
        maps = {}
        for name in findings:
            lesion = masks[key][name]
            if inside:
                peak = tuple(np.argwhere(lesion)[0])
            else:
                grid = np.stack(np.meshgrid(*map(np.arange, lesion.shape), indexing="ij"), axis=-1)
                distance = np.min(np.abs(grid[..., None, :] - np.argwhere(lesion)).max(axis=-1), axis=-1)
                peak = np.unravel_index(int(np.argmax(distance)), lesion.shape)
            heat = np.zeros(lesion.shape, dtype=np.float32)
            heat[peak] = 1.0
            maps[name] = heat
        return maps

    return explain


def test_an_oracle_scores_one_and_a_contrarian_zero(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    expected_pairs = sum(len(m) for m in _cache_masks(site).values())
    assert expected_pairs >= 3
    # Execute
    monkeypatch.setattr(pointing, "saliency_maps", _oracle(site, inside=True))
    oracle = site_pointing_game(None, site)  # type: ignore[arg-type]
    monkeypatch.setattr(pointing, "saliency_maps", _oracle(site, inside=False))
    contrarian = site_pointing_game(None, site)  # type: ignore[arg-type]
    # Assert
    assert (oracle.score, oracle.pairs, oracle.reason) == (1.0, expected_pairs, None)
    assert (contrarian.score, contrarian.pairs) == (0.0, expected_pairs)


def test_the_real_model_scores_the_selected_studies(site: Path, single_thread) -> None:
    # Prepare: score only the studies of one lesion-bearing patient
    masks = _cache_masks(site)
    key = next(k for k, m in masks.items() if m)
    torch.manual_seed(0)
    model = ClinicalMedMPT(TINY.model)
    # Execute
    result = site_pointing_game(model, site, [key], saliency=FAST)
    # Assert
    assert result.pairs == len(masks[key]) and 0.0 <= result.score <= 1.0
    assert site_pointing_game(model, site, ["no-such-study"], saliency=FAST).pairs == 0


def test_a_cache_without_native_geometry_gives_nan_and_a_reason(site: Path, tmp_path: Path, caplog) -> None:
    # Prepare: an index written before ingestion recorded the native geometry
    old = tmp_path / "old-site"
    shutil.copytree(site, old)
    index_path = old / "cache" / "index.json"
    index = json.loads(index_path.read_text(encoding="utf-8"))
    for study in index["studies"]:
        del study["native"]
    index_path.write_text(json.dumps(index), encoding="utf-8")
    # Execute
    result = site_pointing_game(None, old)  # type: ignore[arg-type]  # no map is computed
    # Assert
    assert math.isnan(result.score) and result.pairs == 0 and result.unmapped_studies >= 3
    assert "re-run `fedmpt ingest`" in (result.reason or "") and "pointing game not computed" in caplog.text
