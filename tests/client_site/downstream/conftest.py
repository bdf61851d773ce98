"""Fixtures of the downstream tests: a 3-drug interaction graph and synthetic fine-tuning batches."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from client_site.downstream import NUM_CLINICAL_FEATURES, DrugGraph
from client_site.findings import FINDINGS
from client_site.model import ModelConfig
from client_site.tokenizer import ReportTokenizer

REPORTS = ["FINDINGS: nodule in the left lung.", "检查所见：右侧胸腔积液。", "", "IMPRESSION: emphysema."]


@pytest.fixture(scope="session")
def three_drugs() -> DrugGraph:
    """Drugs a, b, c: a-b a major interaction, b-c a moderate one, a-c none."""
    pairs = frozenset({frozenset("ab"), frozenset("bc")})
    return DrugGraph(drugs=("a", "b", "c"), interactions=pairs, major=frozenset({frozenset("ab")}))


@pytest.fixture(scope="session")
def downstream_batch() -> Callable[..., dict[str, torch.Tensor]]:
    """``make(cfg, n_drugs, seed)``: keyword inputs of ``ClinicalMedMPT.forward`` for 4 patients
    (patient 2 has neither report nor clinical record, patient 3 a report but no record)."""

    def make(cfg: ModelConfig, n_drugs: int, seed: int = 0) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return {
            "volume": torch.rand(4, 3, cfg.num_slices, cfg.image_size, cfg.image_size, generator=g),
            "clinical": torch.rand(4, NUM_CLINICAL_FEATURES, generator=g),
            "text_ids": torch.stack([ReportTokenizer().encode(t, cfg.text_max_len) for t in REPORTS]),
            "diag_targets": (torch.rand(4, len(FINDINGS), generator=g) > 0.5).float(),
            "med_targets": (torch.rand(4, n_drugs, generator=g) > 0.7).float(),
            "has_report": torch.tensor([1.0, 1.0, 0.0, 1.0]),
            "has_clinical": torch.tensor([1.0, 1.0, 0.0, 0.0]),
        }

    return make
