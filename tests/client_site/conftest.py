"""Tiny synthetic ingestion cache and model config shared by the client_site tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from client_site.model import ModelConfig

TINY = ModelConfig(
    num_slices=4, image_size=32, patch_size=8, dim=32, heads=4, slice_depth=1, fusion_depth=1,
    mae_decoder_dim=32, text_max_len=48, text_dim=32, text_encoder_depth=1, text_decoder_depth=1,
)

REPORTS = [
    "FINDINGS: 6 mm nodule in the right upper lobe. IMPRESSION: nodule.",
    "检查所见：双肺纹理清晰。诊断意见：未见异常。",
    "FINDINGS: bilateral pleural effusion.",
    None,
]


@pytest.fixture
def single_thread():
    """Tiny tensors run faster (and steadier on a shared host) without intra-op threading."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_cfg() -> ModelConfig:
    return TINY


def write_cache(root: Path, n_patients: int, *, seed: int = 0, multi_study_patient: int = 0) -> Path:
    """Write ``root/cache`` with ``n_patients`` patients; patient ``multi_study_patient`` has 3 studies."""
    rng = np.random.default_rng(seed)
    cache = root / "cache"
    (cache / "volumes").mkdir(parents=True)
    studies = []
    for p in range(n_patients):
        for s in range(3 if p == multi_study_patient else 1):
            key = f"s{p:03d}{s}"
            volume = rng.random((3, TINY.num_slices, TINY.image_size, TINY.image_size)).astype(np.float16)
            np.save(cache / "volumes" / f"{key}.npy", volume)
            report = REPORTS[(p + s) % len(REPORTS)]
            studies.append({
                "study_key": key, "patient_key": f"p{p:03d}", "volume": f"volumes/{key}.npy",
                "report": report, "language": None if report is None else ("zh" if "检查" in report else "en"),
                "clinical": None,
            })
    (cache / "index.json").write_text(
        json.dumps({"preprocess": {}, "studies": studies}, ensure_ascii=False), encoding="utf-8"
    )
    return cache


@pytest.fixture(scope="session")
def make_cache():
    """The :func:`write_cache` factory."""
    return write_cache


@pytest.fixture(scope="session")
def fake_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 patients, 14 studies (patient p000 has 3), float16 volumes (3, 4, 32, 32)."""
    return write_cache(tmp_path_factory.mktemp("site"), 12)
