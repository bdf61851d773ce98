"""Tiny sites for the privacy tests: a memorisable one (the generated hospital is in tests/conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from client_site.site_config import write_site_config
from federation.presets import get_preset


@pytest.fixture
def memorable_site(tmp_path: Path) -> Callable[..., Path]:
    """The :func:`write_memorable_site` factory, writing under ``tmp_path``."""
    return lambda name, n_patients, seed=0: write_memorable_site(tmp_path / name, n_patients, seed=seed)


def write_memorable_site(site_dir: Path, n_patients: int, *, seed: int = 0) -> Path:
    """A site of random volumes and random report text at the tiny preset's grid.

    Nothing about one patient predicts another, so a model that fits its members better than
    chance can only have memorised them: the membership signal of an overfit model is maximal.
    """
    shape = tuple(get_preset("tiny").preprocess.shape)
    rng = np.random.default_rng(seed)
    cache = site_dir / "cache"
    (cache / "volumes").mkdir(parents=True)
    letters = list("abcdefghijklmnopqrstuvwxyz ")
    studies = []
    for p in range(n_patients):
        key = f"s{p:03d}"
        np.save(cache / "volumes" / f"{key}.npy", rng.random((3, *shape)).astype(np.float16))
        report = "FINDINGS: " + "".join(rng.choice(letters, 60))
        studies.append({"study_key": key, "patient_key": f"p{p:03d}", "volume": f"volumes/{key}.npy",
                        "report": report, "language": "en", "clinical": None})
    (cache / "index.json").write_text(
        json.dumps({"preprocess": {"shape": list(shape)}, "studies": studies}), encoding="utf-8")
    write_site_config(site_dir, name=site_dir.name, epsilon=5.0, delta=1e-5)
    return site_dir
