"""DP-SGD set-up over Opacus: Poisson sampling at an exact rate, model checks, empty batches.

A thin wrapper over :meth:`opacus.PrivacyEngine.make_private` (Abadi et al., "Deep Learning
with Differential Privacy", CCS 2016). It fixes what Opacus 1.6 leaves to the caller:

* the sampling rate. ``make_private`` derives ``q = 1 / len(data_loader)`` (0.0625, not
  64/1000, for 1000 items in batches of 64) and Opacus' own Poisson loader draws from the
  global RNG. Here the loader is a :class:`~opacus.data_loader.DPDataLoader` with an exact
  ``q`` and an explicit generator, and the optimizer and accountant are told that same ``q``;
* empty Poisson batches (:func:`step_on_empty_batch`): the step still happens (zero clipped
  sum + noise) and is accounted, so the history is exactly ``(sigma, q, steps)``;
* an O(P^2) Python loop in ``DPOptimizer.scale_grad`` (~9 % of a step here), hoisted.

Choice of ``grad_sample_mode`` (``benchmarks/bench_training.py``, default ``ModelConfig``,
expected batch 32, CPU; results in ``benchmarks/results/training_throughput.json``): ``"ew"``
(PyTorch ExpandedWeights) is the default. Its backward computes the per-sample weight
gradients *instead of* the summed weight gradient, so DP costs little more than non-DP. Median
DP/non-DP throughput ratio, 2 threads on a quiet host: 0.93 for ``"ew"``, 0.79 ``"hooks"``
(computes both), 0.58 ``"functorch"`` (replays every layer) and 0.24 ``"ghost"`` (two backward
passes; on our per-patient sequences of hundreds of tokens its T^2 ghost norms also cost more
than materialised per-sample gradients). ``"ew"`` needs the batch as the module's first
positional argument and only Linear/Embedding/LayerNorm/Conv-type parametrised layers fed
batch-first tensors; use ``"hooks"`` otherwise.

This package imports no other package of the project but the leaf ``infra``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from opacus import PrivacyEngine
from opacus.data_loader import DPDataLoader
from opacus.grad_sample import AbstractGradSampleModule
from opacus.optimizers import DPOptimizer
from opacus.validators import ModuleValidator
from torch import nn
from torch.utils.data import DataLoader, Dataset

from infra.compat import hoist_scale_grad
from privacy.errors import PrivacyError

logger = logging.getLogger(__name__)

GRAD_SAMPLE_MODES: tuple[str, ...] = ("ew", "hooks", "functorch", "ghost")
DEFAULT_GRAD_SAMPLE_MODE = "ew"
MIN_EXPECTED_BATCH = 32


class IncompatibleModelError(PrivacyError):
    """The model has layers DP-SGD cannot train per example (e.g. BatchNorm)."""


@dataclass
class PrivateTraining:
    """What :func:`make_private` returns.

    Attributes
    ----------
    module : nn.Module
        The Opacus grad-sample wrapper; call it like the model (batch first positional).
    optimizer : DPOptimizer
        Clips per-sample gradients, adds noise, steps the accountant.
    data_loader : DataLoader
        Poisson sampler with rate ``sample_rate`` (a ``DPDataLoader``, or in secure mode the
        same sampler and collation re-seated on the secure RNG).
    criterion : callable or None
        For ``"ghost"``: the Opacus wrapper (call it on the per-example loss and
        ``.backward()`` the result). Otherwise the criterion passed in.
    engine : PrivacyEngine
        Holds the accountant (``engine.accountant.history``).
    sample_rate : float
        The Poisson rate q used by the loader and by the accountant.
    grad_sample_mode : str
        The Opacus mode in use.
    """

    module: nn.Module
    optimizer: DPOptimizer
    data_loader: DataLoader
    criterion: Callable[..., Any] | None
    engine: PrivacyEngine
    sample_rate: float
    grad_sample_mode: str

    def close(self) -> nn.Module:
        """Remove Opacus hooks and per-parameter attributes; return the original model."""
        if isinstance(self.module, AbstractGradSampleModule):
            return self.module.to_standard_module()
        return self.module


def poisson_data_loader(
    dataset: Dataset[Any], *, sample_rate: float, generator: torch.Generator | None,
    **loader_kwargs: Any,
) -> DPDataLoader:
    """Poisson-sampling loader: each item joins each batch independently with ``sample_rate``.

    Items must be tuples of tensors (the empty-batch collation copies their shapes).
    """
    if not 0.0 < sample_rate <= 1.0:
        raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
    return DPDataLoader(dataset, sample_rate=sample_rate, generator=generator, **loader_kwargs)


def make_private(
    *, model: nn.Module, optimizer: torch.optim.Optimizer, data_loader: DataLoader,
    noise_multiplier: float, max_grad_norm: float, criterion: Callable[..., Any] | None = None,
    secure_mode: bool = False, grad_sample_mode: str = DEFAULT_GRAD_SAMPLE_MODE,
    accountant: str = "rdp", noise_generator: torch.Generator | None = None,
) -> PrivateTraining:
    """Wrap model, optimizer and loader for DP-SGD with per-example clipping and Poisson sampling.

    Parameters
    ----------
    model : nn.Module
        In training mode, returning a per-example loss; validated with Opacus'
        ``ModuleValidator`` (BatchNorm and other non-per-example layers are refused).
    optimizer : torch.optim.Optimizer
        Over ``model.parameters()``.
    data_loader : DataLoader
        A :class:`DPDataLoader` (its ``sample_rate`` is used exactly), or a plain loader whose
        ``batch_size / len(dataset)`` becomes the Poisson rate (with its generator).
    noise_multiplier : float
        Noise std / clipping norm (sigma), > 0.
    max_grad_norm : float
        Per-patient clipping norm C, > 0.
    criterion : callable, optional
        Required for ``"ghost"``: must have a ``reduction`` attribute and return the (B,)
        per-example loss when ``reduction="none"``.
    secure_mode : bool
        Opacus secure RNG for noise and sampling (needs ``torchcsprng``). (default: False)
    grad_sample_mode : str
        One of :data:`GRAD_SAMPLE_MODES`. (default: :data:`DEFAULT_GRAD_SAMPLE_MODE`)
    accountant : str
        Opacus accountant, ``"rdp"`` or ``"prv"``. (default: ``"rdp"``)
    noise_generator : torch.Generator, optional
        Seeded generator for the noise (refused in secure mode).
    """
    if grad_sample_mode not in GRAD_SAMPLE_MODES:
        raise ValueError(f"grad_sample_mode must be one of {GRAD_SAMPLE_MODES}, got {grad_sample_mode!r}")
    if noise_multiplier <= 0 or max_grad_norm <= 0:
        raise ValueError(
            f"noise_multiplier and max_grad_norm must be > 0, got {noise_multiplier}, {max_grad_norm}"
        )
    if grad_sample_mode == "ghost" and criterion is None:
        raise ValueError("grad_sample_mode='ghost' needs the criterion (Opacus wraps it)")
    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        raise IncompatibleModelError(
            f"model is not compatible with per-example DP-SGD: {errors}. Replace BatchNorm by "
            "GroupNorm/LayerNorm and nn.MultiheadAttention by Linear-based attention "
            "(opacus.validators.ModuleValidator.fix does both), and call model.train()."
        )
    loader = _as_poisson(data_loader)
    q = loader.sample_rate
    n = len(loader.dataset)  # type: ignore[arg-type]
    if q * n < MIN_EXPECTED_BATCH:
        logger.warning("expected batch %.1f < %d: noise will dominate the clipped sum", q * n,
                       MIN_EXPECTED_BATCH)
    engine = PrivacyEngine(accountant=accountant, secure_mode=secure_mode)
    out = engine.make_private(
        module=model, optimizer=optimizer, data_loader=loader,
        criterion=criterion if criterion is not None else nn.CrossEntropyLoss(),
        noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
        poisson_sampling=False,  # already Poisson, at our exact q
        grad_sample_mode=grad_sample_mode, loss_reduction="mean",
        noise_generator=None if secure_mode else noise_generator,
    )
    if grad_sample_mode == "ghost":
        module, dp_optimizer, wrapped_criterion, dp_loader = out
    else:
        (module, dp_optimizer, dp_loader), wrapped_criterion = out, criterion
    # Opacus took q = 1 / len(loader) = 1 / int(1 / q); use the exact q instead.
    dp_optimizer.expected_batch_size = q * n
    dp_optimizer.attach_step_hook(engine.accountant.get_optimizer_hook_fn(sample_rate=q))
    hoist_scale_grad(dp_optimizer)
    module.forbid_grad_accumulation()
    return PrivateTraining(
        module=module, optimizer=dp_optimizer, data_loader=dp_loader, criterion=wrapped_criterion,
        engine=engine, sample_rate=q, grad_sample_mode=grad_sample_mode,
    )


def step_on_empty_batch(private: PrivateTraining) -> None:
    """Optimizer step for a Poisson batch that sampled nobody.

    Skipping it would change the mechanism the accountant prices; instead the clipped sum is
    zero, noise is added and the step is accounted, exactly as for a non-empty batch.
    """
    optimizer = private.optimizer
    optimizer.zero_grad(set_to_none=True)
    for p in optimizer.params:
        if private.grad_sample_mode == "ghost":
            p.grad = torch.zeros_like(p)
        else:
            p.grad_sample = p.new_zeros((0, *p.shape))
    optimizer.step()


def _as_poisson(data_loader: DataLoader) -> DPDataLoader:
    if isinstance(data_loader, DPDataLoader):
        return data_loader
    if data_loader.batch_size is None:
        raise ValueError("pass a DPDataLoader or a DataLoader with a batch_size")
    n = len(data_loader.dataset)  # type: ignore[arg-type]
    return poisson_data_loader(
        data_loader.dataset, sample_rate=min(data_loader.batch_size / n, 1.0),
        generator=data_loader.generator, collate_fn=data_loader.collate_fn,
    )
