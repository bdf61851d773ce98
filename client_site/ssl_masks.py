"""Self-supervised inputs of :class:`client_site.model.MedMPT`: masks drawn outside ``forward``.

Masks are sampled here from an explicit ``torch.Generator`` and passed to the model as inputs:
random operations inside ``forward`` break Opacus' functorch replay ("vmap: called random
operation while in randomness error mode") and make runs irreproducible.

* image: MAE-style random patch masking, the same number of patches masked in every slice
  (He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022);
* text: BERT-style masking, 15 % of the report tokens, of which 80 % -> MASK, 10 % -> a random
  text token, 10 % unchanged (Devlin et al., "BERT", NAACL 2019).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from client_site.model import IGNORE_INDEX, ModelConfig
from client_site.tokenizer import FIRST_TEXT_ID, MASK_ID, UNK_ID, VOCAB_SIZE


@dataclass(frozen=True)
class MaskingConfig:
    """Mask ratios.

    Parameters
    ----------
    image_mask_ratio : float
        Fraction of the patches of each slice hidden from the encoder, in (0, 1). (default: 0.5)
    mlm_probability : float
        Fraction of report tokens to predict. (default: 0.15)
    """

    image_mask_ratio: float = 0.5
    mlm_probability: float = 0.15

    def __post_init__(self) -> None:
        if not 0.0 < self.image_mask_ratio < 1.0:
            raise ValueError(f"image_mask_ratio must be in (0, 1), got {self.image_mask_ratio}")
        if not 0.0 <= self.mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must be in [0, 1), got {self.mlm_probability}")


def sample_image_mask(
    batch_size: int, num_slices: int, patches_per_slice: int, *, ratio: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Bool mask (B, D, N), True = masked, with ``round(ratio * N)`` (at least 1 and at most
    N - 1) masked patches in every slice."""
    n = patches_per_slice
    n_mask = min(max(round(ratio * n), 1), n - 1)
    noise = torch.rand(batch_size, num_slices, n, generator=generator)
    ranks = noise.argsort(dim=-1).argsort(dim=-1)
    return ranks < n_mask


def mask_report_tokens(
    ids: torch.Tensor, *, probability: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT-style corruption of report ids (B, L).

    Only text tokens (UNK, case markers and pieces; not PAD/BOS/EOS/MASK) are selected. Returns the corrupted ids and the targets
    (the original id at selected positions, ``-100`` elsewhere).
    """
    is_text = ids >= UNK_ID
    selected = (torch.rand(ids.shape, generator=generator) < probability) & is_text
    targets = torch.where(selected, ids, torch.full_like(ids, IGNORE_INDEX))
    action = torch.rand(ids.shape, generator=generator)
    random_tokens = torch.randint(FIRST_TEXT_ID, VOCAB_SIZE, ids.shape, generator=generator)
    corrupted = torch.where(selected & (action < 0.8), torch.full_like(ids, MASK_ID), ids)
    corrupted = torch.where(selected & (action >= 0.8) & (action < 0.9), random_tokens, corrupted)
    return corrupted, targets


def make_ssl_inputs(
    volume: torch.Tensor, text_ids: torch.Tensor, has_report: torch.Tensor, *,
    model_cfg: ModelConfig, masking: MaskingConfig, generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """Keyword arguments of ``MedMPT.forward`` for one collated batch (masks drawn here)."""
    b = volume.shape[0]
    image_mask = sample_image_mask(
        b, model_cfg.num_slices, model_cfg.patches_per_slice,
        ratio=masking.image_mask_ratio, generator=generator,
    )
    mlm_ids, mlm_targets = mask_report_tokens(
        text_ids, probability=masking.mlm_probability, generator=generator
    )
    return {
        "volume": volume, "image_mask": image_mask, "text_ids": text_ids,
        "text_mlm_ids": mlm_ids, "text_mlm_targets": mlm_targets,
        "has_report": has_report.to(volume.dtype),
    }


class PerExampleLoss(nn.Module):
    """Criterion over the model's per-example loss vector (B,).

    The model already returns one loss per patient, so the "criterion" only reduces it.
    With Opacus ghost clipping, ``make_private`` wraps it and sets ``reduction="none"`` for
    the first backward pass; the vector is then returned unchanged.

    Parameters
    ----------
    reduction : str
        ``"mean"``, ``"sum"`` or ``"none"``. (default: ``"mean"``)
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, per_example: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        """Reduce ``per_example`` (B,); ``target`` is ignored (the targets live in the model)."""
        if self.reduction == "none":
            return per_example
        if self.reduction == "sum":
            return per_example.sum()
        if self.reduction == "mean":
            return per_example.mean()
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {self.reduction!r}")


class SSLObjective:
    """The pretraining objective of :func:`client_site.training.train_locally`.

    Batches are :data:`~client_site.datasets.PatientItem` columns; the inputs of
    ``MedMPT.forward`` get fresh masks from the training generator.

    Parameters
    ----------
    model_cfg : ModelConfig
        The model's sizes (mask shapes).
    masking : MaskingConfig
        Mask ratios.
    """

    parts: tuple[str, ...] = ("loss", "mim", "mlm", "gen")

    def __init__(self, model_cfg: ModelConfig, masking: MaskingConfig) -> None:
        self.model_cfg = model_cfg
        self.masking = masking

    def model_inputs(
        self, batch: Sequence[torch.Tensor], *, generator: torch.Generator,
    ) -> dict[str, torch.Tensor]:
        """Keyword arguments of ``MedMPT.forward``, ``volume`` first."""
        volume, text_ids, has_report = batch
        return make_ssl_inputs(volume, text_ids, has_report, model_cfg=self.model_cfg,
                               masking=self.masking, generator=generator)

    def part_counts(self, batch: Sequence[torch.Tensor]) -> dict[str, float]:
        """Examples each loss part averages over: all for ``loss``/``mim``, reports for the text parts."""
        b, n_rep = float(batch[0].shape[0]), float(batch[2].sum())
        return {"loss": b, "mim": b, "mlm": n_rep, "gen": n_rep}
