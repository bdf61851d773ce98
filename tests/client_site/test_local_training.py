"""train_locally: exact DP accounting, plain state-dict keys, loss goes down without DP."""

import pytest
import torch

from client_site.datasets import PatientDataset, load_cache_index
from client_site.model import MedMPT
from client_site.tokenizer import ReportTokenizer
from client_site.training import TrainConfig, train_locally
from privacy.randomness import seeded_randomness

pytestmark = pytest.mark.usefixtures("single_thread")


def _dataset(cache, cfg, seed=0):
    keys = sorted({r.patient_key for r in load_cache_index(cache)})
    return PatientDataset(cache, keys, ReportTokenizer(), max_len=cfg.text_max_len, seed=seed)


def test_dp_history_is_exact_and_keys_are_plain(fake_cache, tiny_cfg):
    # Prepare: q = 5/12, which Opacus' make_private alone would turn into 1/int(12/5) = 0.5
    torch.manual_seed(0)
    model = MedMPT(tiny_cfg)
    cfg = TrainConfig(local_steps=4, expected_batch_size=5, noise_multiplier=1.3, max_grad_norm=0.7)
    # Execute
    result = train_locally(model, _dataset(fake_cache, tiny_cfg), cfg)
    # Assert
    assert result.accountant_history == [(1.3, 5 / 12, 4)]
    assert result.sample_rate == 5 / 12 and result.steps == 4 and result.num_examples == 12
    assert list(result.state_dict) == list(MedMPT(tiny_cfg).state_dict())
    assert all(torch.isfinite(v).all() for v in result.state_dict.values())
    assert {"loss", "mim", "mlm", "gen"} <= set(result.metrics)
    assert not any(hasattr(p, "grad_sample") for p in model.parameters())  # Opacus detached


def test_empty_poisson_batches_still_count_as_steps(fake_cache, tiny_cfg):
    # Prepare: q = 1/12, so about a third of the batches are empty
    torch.manual_seed(0)
    cfg = TrainConfig(local_steps=8, expected_batch_size=1, grad_sample_mode="hooks")
    randomness = seeded_randomness(3, run_id="empty-batches", round=1)  # a draw with empty batches
    # Execute
    result = train_locally(MedMPT(tiny_cfg), _dataset(fake_cache, tiny_cfg), cfg, randomness=randomness)
    # Assert
    assert result.metrics["empty_batches"] >= 1
    assert result.accountant_history == [(1.0, 1 / 12, 8)]


def test_dp_training_is_deterministic_given_the_sites_randomness(fake_cache, tiny_cfg):
    # Prepare
    cfg = TrainConfig(local_steps=2, expected_batch_size=4, seed=11)
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        randomness = seeded_randomness(5, run_id="run", round=1)
        states.append(train_locally(MedMPT(tiny_cfg), _dataset(fake_cache, tiny_cfg), cfg,
                                    randomness=randomness).state_dict)
    # Assert
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_training_without_dp_reduces_the_loss(fake_cache, tiny_cfg):
    # Prepare: a small fixed dataset, plain AdamW
    torch.manual_seed(0)
    model = MedMPT(tiny_cfg)
    dataset = _dataset(fake_cache, tiny_cfg)
    cfg = TrainConfig(local_steps=30, expected_batch_size=6, lr=3e-3, dp=False)
    # Execute
    first = train_locally(model, dataset, TrainConfig(local_steps=2, expected_batch_size=6, lr=0.0, dp=False))
    result = train_locally(model, dataset, cfg)
    last = train_locally(model, dataset, TrainConfig(local_steps=2, expected_batch_size=6, lr=0.0, dp=False))
    # Assert
    assert result.accountant_history == [] and result.steps == 30
    assert last.metrics["loss"] < 0.8 * first.metrics["loss"]
