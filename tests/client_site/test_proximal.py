"""FedProx at the site: mu * (w - w_global) is added after DP noise and pulls the update back."""

import pytest
import torch

from client_site.datasets import PatientDataset, load_cache_index
from client_site.model import MedMPT
from client_site.proximal import attach_proximal_term
from client_site.tokenizer import ReportTokenizer
from client_site.training import TrainConfig, train_locally

pytestmark = pytest.mark.usefixtures("single_thread")


def _dataset(cache, cfg):
    keys = sorted({r.patient_key for r in load_cache_index(cache)})
    return PatientDataset(cache, keys, ReportTokenizer(), max_len=cfg.text_max_len, seed=0)


def _distance_to_global(tiny_cfg, dataset, **train):
    torch.manual_seed(0)
    model = MedMPT(tiny_cfg)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    result = train_locally(model, dataset, TrainConfig(local_steps=6, expected_batch_size=4, lr=1e-2,
                                                       seed=5, **train))
    squared = sum(float((result.state_dict[k] - start[k]).double().pow(2).sum()) for k in start)
    return squared ** 0.5, result


def test_hook_adds_mu_times_the_distance_to_the_weights_at_attach_time():
    # Prepare: w_global = 1; the weight then moves to 3 with no data gradient
    w = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([w], lr=1.0)
    attach_proximal_term(optimizer, mu=0.25)
    with torch.no_grad():
        w.fill_(3.0)
    w.grad = torch.zeros(2)

    # Execute
    optimizer.step()

    # Assert: 3 - lr * mu * (3 - 1)
    assert torch.equal(w.detach(), torch.full((2,), 2.5))


def test_mu_zero_attaches_nothing_and_negative_mu_is_refused():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=1.0)

    assert attach_proximal_term(optimizer, mu=0.0) is None
    with pytest.raises(ValueError, match="mu must be >= 0"):
        attach_proximal_term(optimizer, mu=-0.1)


@pytest.mark.parametrize("dp", [True, False])
def test_proximal_term_keeps_the_local_update_closer_to_the_global_model(fake_cache, tiny_cfg, dp):
    # Prepare
    dataset = _dataset(fake_cache, tiny_cfg)

    # Execute: same seed (batches, masks, DP noise), with and without the proximal term
    plain, plain_result = _distance_to_global(tiny_cfg, dataset, dp=dp, proximal_mu=0.0)
    prox, prox_result = _distance_to_global(tiny_cfg, dataset, dp=dp, proximal_mu=50.0)

    # Assert
    assert 0 < prox < 0.8 * plain
    assert prox_result.accountant_history == plain_result.accountant_history  # no privacy cost
    assert (prox_result.accountant_history != []) == dp
