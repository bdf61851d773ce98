"""make_private: exact Poisson rate, refused BatchNorm, accounted empty batches, every mode."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from privacy.dp_training import (
    GRAD_SAMPLE_MODES,
    IncompatibleModelError,
    make_private,
    poisson_data_loader,
    step_on_empty_batch,
)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x))).squeeze(-1)


class _Criterion(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.reduction = "mean"

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = (out - target) ** 2
        return loss if self.reduction == "none" else loss.mean()


@pytest.fixture(autouse=True)
def _single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _data(n=50):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 4, generator=g), torch.randn(n, generator=g))


@pytest.mark.parametrize("mode", GRAD_SAMPLE_MODES)
def test_history_is_exact_with_empty_batches(mode):
    # Prepare: q = 0.03 on 50 items -> many empty batches; 1/q is not an integer
    torch.manual_seed(0)
    model = _Net()
    loader = poisson_data_loader(_data(), sample_rate=0.03, generator=torch.Generator().manual_seed(1))
    private = make_private(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), data_loader=loader,
        noise_multiplier=1.1, max_grad_norm=1.0, criterion=_Criterion(), grad_sample_mode=mode,
        noise_generator=torch.Generator().manual_seed(2),
    )
    before = [p.detach().clone() for p in model.parameters()]
    steps = empty = 0
    # Execute
    for x, y in private.data_loader:
        private.optimizer.zero_grad(set_to_none=True)
        if len(x) == 0:
            step_on_empty_batch(private)
            empty += 1
        else:
            out = private.module(x)
            loss = private.criterion(out, y) if mode == "ghost" else ((out - y) ** 2).mean()
            loss.backward()
            private.optimizer.step()
        steps += 1
    # Assert
    assert empty >= 1 and steps == 33  # int(1 / 0.03) batches per pass
    assert private.engine.accountant.history == [(1.1, 0.03, steps)]
    assert private.optimizer.expected_batch_size == pytest.approx(1.5)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # noise applied
    assert list(private.close().state_dict()) == list(_Net().state_dict())


def test_plain_loader_becomes_poisson_at_batch_over_n():
    # Prepare
    model = _Net()
    loader = DataLoader(_data(50), batch_size=15, generator=torch.Generator().manual_seed(0))
    # Execute
    private = make_private(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                           data_loader=loader, noise_multiplier=1.0, max_grad_norm=1.0)
    # Assert: Opacus alone would use 1 / len(loader) = 1/4
    assert private.sample_rate == pytest.approx(0.3)


def test_batchnorm_is_refused_with_a_clear_error():
    # Prepare
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    loader = poisson_data_loader(_data(), sample_rate=0.5, generator=torch.Generator().manual_seed(0))
    # Execute / Assert
    with pytest.raises(IncompatibleModelError, match="BatchNorm"):
        make_private(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                     data_loader=loader, noise_multiplier=1.0, max_grad_norm=1.0)


def test_bad_arguments_are_refused():
    model = _Net()
    loader = poisson_data_loader(_data(), sample_rate=0.5, generator=None)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="grad_sample_mode"):
        make_private(model=model, optimizer=opt, data_loader=loader, noise_multiplier=1.0,
                     max_grad_norm=1.0, grad_sample_mode="magic")
    with pytest.raises(ValueError, match="criterion"):
        make_private(model=model, optimizer=opt, data_loader=loader, noise_multiplier=1.0,
                     max_grad_norm=1.0, grad_sample_mode="ghost")
    with pytest.raises(ValueError, match="sample_rate"):
        poisson_data_loader(_data(), sample_rate=0.0, generator=None)


def test_scale_grad_matches_opacus():
    # Prepare: a DP optimizer with noised gradients in place
    model = _Net()
    loader = poisson_data_loader(_data(), sample_rate=0.2, generator=torch.Generator().manual_seed(0))
    private = make_private(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                           data_loader=loader, noise_multiplier=1.0, max_grad_norm=1.0)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
        p.grad_sample = torch.zeros(3, *p.shape)  # accumulated_iterations == 1
    expected = [p.grad / 10.0 for p in model.parameters()]  # expected batch = 0.2 * 50
    # Execute
    private.optimizer.scale_grad()
    # Assert
    assert "scale_grad" in vars(private.optimizer)  # the hoisted version is installed
    for p, e in zip(model.parameters(), expected):
        torch.testing.assert_close(p.grad, e)
