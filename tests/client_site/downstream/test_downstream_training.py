"""Fine-tuning with the shared train_locally loop: exact DP accounting, learning without DP."""

import pytest
import torch

from client_site.datasets import load_cache_index
from client_site.downstream import ClinicalMedMPT, DownstreamDataset, DownstreamObjective
from client_site.layout import SiteLayout
from client_site.tokenizer import ReportTokenizer
from client_site.training import TrainConfig, train_locally
from federation.presets import get_preset

pytestmark = pytest.mark.usefixtures("single_thread")

TINY = get_preset("tiny").model


def _dataset(site_dir, seed=0):
    cache = SiteLayout(site_dir).cache_dir
    keys = sorted({r.patient_key for r in load_cache_index(cache)})
    return DownstreamDataset(cache, keys, ReportTokenizer(), max_len=TINY.text_max_len, seed=seed)


def test_items_carry_weak_labels_and_prescriptions(ingested_site):
    # Prepare
    dataset = _dataset(ingested_site)
    # Execute
    items = [dataset.get(i, draw=0) for i in range(len(dataset))]
    # Assert: the synthetic site links a report and a record to every study
    volume, ids, has_report, clinical, has_clinical, diag, meds = items[0]
    assert volume.shape == (3, *get_preset("tiny").preprocess.shape) and ids.shape == (TINY.text_max_len,)
    assert all(item[2] == 1.0 and item[4] == 1.0 for item in items)
    assert sum(float(item[5].sum()) for item in items) > 0  # some reports affirm findings
    for i, item in enumerate(items):  # medication targets = the record's prescriptions
        prescribed = dataset.study_of(i, draw=0).clinical["medications"]
        assert sorted(dataset.graph.drugs[j] for j in item[6].nonzero().flatten()) == sorted(prescribed)


def test_dp_finetuning_has_the_exact_accountant_history(ingested_site):
    # Prepare: q = 3/8
    torch.manual_seed(0)
    model = ClinicalMedMPT(TINY)
    cfg = TrainConfig(local_steps=3, expected_batch_size=3, noise_multiplier=1.1, max_grad_norm=0.5)
    # Execute
    result = train_locally(model, _dataset(ingested_site), cfg, DownstreamObjective())
    # Assert
    assert result.accountant_history == [(1.1, 3 / 8, 3)]
    assert list(result.state_dict) == list(ClinicalMedMPT(TINY).state_dict())
    assert {"loss", "diag", "med", "ddi"} <= set(result.metrics) and "gen" not in result.metrics
    assert all(torch.isfinite(v).all() for v in result.state_dict.values())
    assert not any(hasattr(p, "grad_sample") for p in model.parameters())


def test_finetuning_without_dp_reduces_the_loss(ingested_site):
    # Prepare
    torch.manual_seed(0)
    model = ClinicalMedMPT(TINY)
    dataset = _dataset(ingested_site)
    probe = TrainConfig(local_steps=2, expected_batch_size=8, lr=0.0, dp=False)
    # Execute
    first = train_locally(model, dataset, probe, DownstreamObjective())
    train_locally(model, dataset, TrainConfig(local_steps=25, expected_batch_size=4, lr=3e-3, dp=False),
                  DownstreamObjective())
    last = train_locally(model, dataset, probe, DownstreamObjective())
    # Assert
    assert last.metrics["loss"] < 0.7 * first.metrics["loss"]
    assert last.metrics["med"] < first.metrics["med"] and last.metrics["ddi"] < first.metrics["ddi"]
