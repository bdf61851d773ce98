"""Local training at one site, with or without DP-SGD, for any per-example objective.

One loop serves SSL pretraining of :class:`~client_site.model.MedMPT` (:class:`SSLObjective`,
the default) and downstream fine-tuning of
:class:`~client_site.downstream.model.ClinicalMedMPT`
(:class:`~client_site.downstream.objective.DownstreamObjective`): an objective turns a batch
into the model's inputs and says how many examples each loss part averages over.

With DP, each optimizer step is one DP-SGD step (Abadi et al. 2016) over a Poisson batch of
patients at rate ``q = expected_batch_size / len(dataset)``; exactly ``local_steps`` steps run
(empty batches included, see :func:`privacy.dp_training.step_on_empty_batch`), so the Opacus
accountant history of a call is exactly ``[(noise_multiplier, q, local_steps)]``. The caller
owns the cumulative accounting (``privacy.accountant``) and thread settings. The sampling and
noise generators come from the site (:mod:`privacy.randomness`), never from the run's seed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from client_site.model import LossParts
from client_site.proximal import attach_proximal_term
from client_site.ssl_masks import MaskingConfig, PerExampleLoss, SSLObjective
from privacy.dp_training import (
    DEFAULT_GRAD_SAMPLE_MODE,
    PrivateTraining,
    make_private,
    poisson_data_loader,
    step_on_empty_batch,
)
from privacy.randomness import DPRandomness, fresh_randomness

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "sgd")



class TrainingObjective(Protocol):
    """What :func:`train_locally` optimises.

    The model's ``forward`` must return the per-example loss ``(B,)`` (each entry depending on
    its own example only, so DP-SGD clipping bounds one patient) and leave the batch means of
    its loss parts (:data:`~client_site.model.LossParts`).
    """

    parts: tuple[str, ...]
    """Loss parts reported, ``"loss"`` (the total) first."""

    def model_inputs(
        self, batch: Sequence[torch.Tensor], *, generator: torch.Generator,
    ) -> dict[str, torch.Tensor]:
        """Keyword inputs of the model's ``forward`` for a collated batch; the first entry is
        the batch-first tensor Opacus sees as the positional input. Random inputs (masks) must
        be drawn from ``generator``."""
        ...

    def part_counts(self, batch: Sequence[torch.Tensor]) -> dict[str, float]:
        """For each of :attr:`parts`, the number of examples of ``batch`` its mean is over."""
        ...


@dataclass(frozen=True)
class TrainConfig:
    """One call of :func:`train_locally`.

    Parameters
    ----------
    local_steps : int
        Optimizer steps to run. (default: 10)
    expected_batch_size : int
        Expected Poisson batch under DP; fixed batch without DP. (default: 16)
    lr, weight_decay : float
        Learning rate and AdamW weight decay. (default: 1e-3, 0.01)
    optimizer : str
        ``"adamw"`` or ``"sgd"`` (plain SGD, the usual optimizer of DP linear probes, Mehta et
        al. 2023: with few steps at a large rate it moves a small head further than Adam,
        whose per-coordinate normalisation turns DP noise into steps of full size).
        (default: ``"adamw"``)
    seed : int
        Seeds the SSL masks and, without DP, the shuffling; never the DP sampling or noise
        (:mod:`privacy.randomness`). (default: 0)
    noise_multiplier, max_grad_norm : float
        DP-SGD sigma and per-patient clipping norm. (default: 1.0, 1.0)
    dp : bool
        DP-SGD (True) or plain AdamW on fixed-size shuffled batches. (default: True)
    grad_sample_mode : str
        Opacus per-sample gradient mode, see :mod:`privacy.dp_training`. (default: ``"ew"``)
    masking : MaskingConfig
        SSL mask ratios (used by the default :class:`SSLObjective` only).
    proximal_mu : float
        FedProx weight: adds ``mu * (w - w_global)`` to each gradient after DP clipping and
        noise (:mod:`client_site.proximal`); 0 is plain local training. (default: 0.0)
    """

    local_steps: int = 10
    expected_batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    optimizer: str = "adamw"
    seed: int = 0
    noise_multiplier: float = 1.0
    max_grad_norm: float = 1.0
    dp: bool = True
    grad_sample_mode: str = DEFAULT_GRAD_SAMPLE_MODE
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    proximal_mu: float = 0.0

    def __post_init__(self) -> None:
        if self.local_steps < 1 or self.expected_batch_size < 1:
            raise ValueError(
                f"local_steps and expected_batch_size must be >= 1, got {self.local_steps}, "
                f"{self.expected_batch_size}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")


@dataclass(frozen=True)
class LocalTrainResult:
    """Outcome of :func:`train_locally`.

    Attributes
    ----------
    state_dict : dict of str to Tensor
        Weights of the plain model (keys as the unwrapped model's ``state_dict()``).
    metrics : dict of str to float
        Mean of each loss part of the objective over the call (SSL: ``loss``, ``mim``,
        ``mlm``, ``gen``; 0 for a part no example had), ``seconds`` (wall),
        ``cpu_seconds`` (this process), ``samples_per_s`` (wall), ``mean_batch_size`` and
        ``empty_batches``.
    num_examples : int
        Patients in the training dataset.
    steps : int
        Optimizer steps run.
    sample_rate : float
        Poisson rate q (DP) or ``batch / num_examples`` (non-DP).
    accountant_history : list of (float, float, int)
        Opacus accountant history of this call (empty without DP).
    """

    state_dict: dict[str, torch.Tensor]
    metrics: dict[str, float]
    num_examples: int
    steps: int
    sample_rate: float
    accountant_history: list[tuple[float, float, int]]


@dataclass
class _Loop:
    """What the step loop drives: the (possibly DP-wrapped) module, optimizer and loader."""

    module: nn.Module
    optimizer: torch.optim.Optimizer
    loader: DataLoader[tuple[torch.Tensor, ...]]
    sample_rate: float
    private: PrivateTraining | None


@dataclass
class _Tally:
    """Running sums of the loss parts, weighted by how many examples each part averages over."""

    sums: dict[str, float]
    counts: dict[str, float]
    seen: int = 0
    steps: int = 0
    empty: int = 0

    reported: set[str] = field(default_factory=lambda: {"loss"})

    def add(self, parts: LossParts, counts: dict[str, float], batch_size: int) -> None:
        for key, count in counts.items():
            if key not in parts:
                continue  # a part this model does not train (e.g. a frozen report decoder)
            self.sums[key] += float(parts[key]) * count
            self.counts[key] += count
            self.reported.add(key)
        self.seen += batch_size

    def means(self) -> dict[str, float]:
        """Mean of each part the model returned (the total always)."""
        return {key: self.sums[key] / max(self.counts[key], 1.0) for key in self.sums if key in self.reported}


def _build_loop(model: nn.Module, dataset: Dataset[tuple[torch.Tensor, ...]], cfg: TrainConfig,
                randomness: DPRandomness | None) -> _Loop:
    """The optimizer (with the proximal term) and, under DP, Opacus around model, optimizer and loader.

    Under DP the Poisson sampling and the noise use ``randomness`` (fresh from the OS when
    None); without DP the shuffling is seeded from ``cfg.seed`` (nothing private to protect).
    """
    n = len(dataset)  # type: ignore[arg-type]
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer: torch.optim.Optimizer = torch.optim.SGD(trainable, lr=cfg.lr) if cfg.optimizer == "sgd" \
        else torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    attach_proximal_term(optimizer, mu=cfg.proximal_mu)  # the inner optimizer: after DP noise
    if not cfg.dp:
        batch_size = min(cfg.expected_batch_size, n)
        shuffle = torch.Generator().manual_seed(cfg.seed)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=shuffle, drop_last=True)
        return _Loop(model, optimizer, loader, batch_size / n, None)
    randomness = randomness or fresh_randomness()
    rate = min(cfg.expected_batch_size / n, 1.0)
    private = make_private(
        model=model, optimizer=optimizer,
        data_loader=poisson_data_loader(dataset, sample_rate=rate, generator=randomness.sampling),
        noise_multiplier=cfg.noise_multiplier, max_grad_norm=cfg.max_grad_norm,
        criterion=PerExampleLoss(), grad_sample_mode=cfg.grad_sample_mode,
        noise_generator=randomness.noise,
    )
    return _Loop(private.module, private.optimizer, private.data_loader, rate, private)


def _step(loop: _Loop, batch: Sequence[torch.Tensor], objective: TrainingObjective,
          masks: torch.Generator) -> LossParts:
    """One optimizer step on a non-empty batch (under DP: clip, noise, then the optimizer)."""
    inputs = objective.model_inputs(batch, generator=masks)
    loop.optimizer.zero_grad(set_to_none=True)
    first = next(iter(inputs))  # the batch-first input Opacus (ew) sees as positional
    per_example, parts = loop.module(inputs.pop(first), **inputs)
    if loop.private is not None and loop.private.grad_sample_mode == "ghost":
        loss = loop.private.criterion(per_example, None)  # type: ignore[misc]
    else:
        loss = per_example.mean()
    loss.backward()
    loop.optimizer.step()
    return parts


def _run_steps(loop: _Loop, objective: TrainingObjective, steps: int,
               masks: torch.Generator) -> _Tally:
    """Exactly ``steps`` optimizer steps, empty Poisson batches included."""
    tally = _Tally(dict.fromkeys(objective.parts, 0.0), dict.fromkeys(objective.parts, 0.0))
    while tally.steps < steps:
        for batch in loop.loader:
            tally.steps += 1
            if batch[0].shape[0] == 0:
                if loop.private is None:
                    raise RuntimeError("empty batch without Poisson sampling")
                step_on_empty_batch(loop.private)
                tally.empty += 1
            else:
                parts = _step(loop, batch, objective, masks)
                tally.add(parts, objective.part_counts(batch), batch[0].shape[0])
            if tally.steps >= steps:
                break  # before fetching (and drawing) a batch that would not be used
    return tally


def train_locally(
    model: nn.Module, dataset: Dataset[tuple[torch.Tensor, ...]], cfg: TrainConfig,
    objective: TrainingObjective | None = None, *, randomness: DPRandomness | None = None,
) -> LocalTrainResult:
    """Train ``model`` in place for ``cfg.local_steps`` steps on ``dataset`` (one item = one patient).

    Parameters
    ----------
    model : nn.Module
        Returns the per-example loss and its parts (see :class:`TrainingObjective`).
        Only parameters with ``requires_grad`` are optimised.
    dataset : Dataset
        One item per patient, a tuple of tensors (e.g.
        :class:`~client_site.datasets.PatientDataset`).
    cfg : TrainConfig
        Steps, batch, optimizer and DP settings.
    objective : TrainingObjective, optional
        Default: SSL pretraining of ``MedMPT``, ``SSLObjective(model.cfg, cfg.masking)``.
    randomness : DPRandomness, optional
        Generators of the DP sampling and noise (:mod:`privacy.randomness`); fresh from the
        OS CSPRNG when None. Never derived from ``cfg.seed``. (default: None)
    """
    objective = objective or SSLObjective(model.cfg, cfg.masking)  # type: ignore[arg-type]
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("cannot train on an empty dataset")
    model.train()
    masks = torch.Generator().manual_seed(cfg.seed)  # SSL masks: part of the per-patient function
    loop = _build_loop(model, dataset, cfg, randomness)
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        tally = _run_steps(loop, objective, cfg.local_steps, masks)
    finally:
        if loop.private is not None:
            loop.private.close()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    history = [] if loop.private is None else [
        (float(s), float(q), int(k)) for s, q, k in loop.private.engine.accountant.history
    ]
    metrics = {
        **tally.means(), "seconds": seconds, "cpu_seconds": cpu_seconds,
        "samples_per_s": tally.seen / seconds if seconds > 0 else 0.0,
        "mean_batch_size": tally.seen / tally.steps, "empty_batches": float(tally.empty),
    }
    logger.info("local training: %d steps, %d examples seen, %.2f samples/s",
                tally.steps, tally.seen, metrics["samples_per_s"])
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return LocalTrainResult(
        state_dict=state, metrics=metrics, num_examples=n, steps=tally.steps,
        sample_rate=loop.sample_rate, accountant_history=history,
    )
