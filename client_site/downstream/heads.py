"""The clinical heads of :class:`~client_site.downstream.model.ClinicalMedMPT` on per-patient image features.

What a site fine-tunes privately when the backbone is frozen (the default): the diagnosis head
(a :class:`~client_site.downstream.feature_head.LinearFindingHead`, the benchmark's head) on the
image features -- the parameter-free densitometry and the frozen encoder's scan embedding
(:func:`image_features`) -- standardised inside the model with public statistics
(:class:`~client_site.downstream.feature_head.FeatureStandardiser`), and the medication head on
what a prescriber decides from: the predicted findings (the diagnosis head's probabilities, not
trained through this head) and the clinical features (labs, symptoms, current medications). The
medication head does not read the raw image columns: under DP every input column of a linear head
adds noise to its logits, and ~190 image columns carry the prescribing signal only through the
findings. With the backbone
frozen the features of a patient do not change while the heads train, so a site computes them once
per round (:func:`head_dataset`) and runs full-batch DP-GD on the heads alone
(:class:`HeadsObjective`), the recipe of the diagnosis benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from client_site.downstream.clinical_features import NUM_CLINICAL_FEATURES
from client_site.downstream.densitometry import (
    NUM_DENSITY_FEATURES,
    NUM_ZONE_FEATURES,
    chest_densitometry,
    lung_zone_densitometry,
)
from client_site.downstream.drug_graph import ddi_penalty
from client_site.downstream.feature_head import FeatureStandardiser, LinearFindingHead
from client_site.downstream.nodule_blobs import NUM_NODULE_FEATURES, nodule_blob_features
from client_site.findings import FINDINGS
from client_site.model import LossParts, MedMPT

NUM_FEATURES = NUM_DENSITY_FEATURES + NUM_ZONE_FEATURES + NUM_NODULE_FEATURES
"""Width of the parameter-free densitometry the heads read (:func:`densitometry_features`)."""


@dataclass(frozen=True)
class HeadConfig:
    """Downstream heads and loss weights of :class:`ClinicalMedMPT`.

    Parameters
    ----------
    diag_weight, med_weight, gen_weight : float
        Weights of the diagnosis BCE, medication BCE and report-generation CE. (default: 1.0 each)
    ddi_weight : float
        Weight of the DDI penalty (SafeDrug). Kept small: the medication BCE is a mean over the
        formulary while the penalty sums over pairs. (default: 0.05)
    threshold : float
        Probability above which a drug is a recommendation candidate. (default: 0.5)
    train_encoder : bool
        Fine-tune the image encoder (slice ViT, fusion transformer) too. Off by default: under
        DP the noise grows with the number of parameters trained, and the heads on a frozen
        encoder plus the densitometry are what a few hundred patients can train privately
        (Tramer & Boneh 2021; Mehta et al. 2023). (default: False)
    train_report_decoder : bool
        Fine-tune the report decoder (teacher-forced generation loss). Off by default for the
        same reason: it has far more parameters than the heads, and since all parts share one
        per-patient clipping norm its gradient would take most of it. The SSL stage trains it
        (image-conditioned generation). (default: False)
    """

    diag_weight: float = 1.0
    med_weight: float = 1.0
    ddi_weight: float = 0.05
    gen_weight: float = 1.0
    threshold: float = 0.5
    train_encoder: bool = False
    train_report_decoder: bool = False

    def __post_init__(self) -> None:
        if min(self.diag_weight, self.med_weight, self.ddi_weight, self.gen_weight) < 0:
            raise ValueError("loss weights must be >= 0")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")

    @property
    def backbone_frozen(self) -> bool:
        """Only the heads train (their features can be computed once per round)."""
        return not (self.train_encoder or self.train_report_decoder)


def densitometry_features(volume: torch.Tensor) -> torch.Tensor:
    """Chest densitometry, lung-zone densitometry and the lung-nodule blob block (all parameter-free),
    ``(B, C, D, H, W)`` -> ``(B, NUM_FEATURES)``."""
    return torch.cat([chest_densitometry(volume), lung_zone_densitometry(volume), nodule_blob_features(volume)], dim=1)


def image_features(volume: torch.Tensor, scan: torch.Tensor) -> torch.Tensor:
    """The heads' raw input: densitometry of ``volume`` then the scan embedding ``scan`` (B, dim)."""
    return torch.cat([densitometry_features(volume), scan], dim=1)


def encode_image_features(backbone: MedMPT, volume: torch.Tensor) -> torch.Tensor:
    """:func:`image_features` of ``volume`` with ``backbone``'s scan embedding (no gradient)."""
    with torch.no_grad():
        return image_features(volume, backbone.encode_scan(volume)[1])


class ClinicalHeads(nn.Module):
    """Diagnosis and medication heads on standardised image features, with a per-patient loss.

    Both are linear multi-label heads (:class:`LinearFindingHead`): diagnosis on the image
    features, medication on the predicted findings and the clinical features. Few parameters, so
    little DP noise (a hidden layer would multiply them and share the per-patient clipping norm).

    Parameters
    ----------
    dim : int
        Scan-embedding width of the backbone.
    ddi_adjacency : torch.Tensor
        ``(D, D)`` interaction graph of the formulary (public reference data; not a weight).
    heads : HeadConfig
        Loss weights.
    """

    ddi_adjacency: torch.Tensor

    def __init__(self, dim: int, ddi_adjacency: torch.Tensor, heads: HeadConfig) -> None:
        super().__init__()
        width = NUM_FEATURES + dim
        self.config = heads
        self.standardiser = FeatureStandardiser(width)
        self.diagnosis = LinearFindingHead(width, len(FINDINGS))
        self.medication = LinearFindingHead(len(FINDINGS) + NUM_CLINICAL_FEATURES, ddi_adjacency.shape[0])
        self.register_buffer("ddi_adjacency", ddi_adjacency, persistent=False)

    def diagnosis_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Raw image features (B, width) -> finding logits (B, len(FINDINGS))."""
        return self.diagnosis.logits(self.standardiser(features))

    def medication_logits(self, features: torch.Tensor, clinical: torch.Tensor,
                          diagnosis_logits: torch.Tensor | None = None) -> torch.Tensor:
        """Raw image features and clinical features (B, NUM_CLINICAL_FEATURES) -> drug logits, from
        the predicted findings (sigmoid of ``diagnosis_logits``, computed from ``features`` when not
        given) and the clinical features. The findings enter detached: the medication loss does not
        train the diagnosis head."""
        if clinical.dim() != 2 or clinical.shape[1] != NUM_CLINICAL_FEATURES:
            raise ValueError(f"clinical_features must be (B, {NUM_CLINICAL_FEATURES}), got {tuple(clinical.shape)}")
        if diagnosis_logits is None:
            diagnosis_logits = self.diagnosis_logits(features)
        findings = torch.sigmoid(diagnosis_logits.detach())
        return self.medication.logits(torch.cat([findings, clinical.to(features.dtype)], dim=1))

    def forward(self, features: torch.Tensor, clinical: torch.Tensor, diag_targets: torch.Tensor,
                med_targets: torch.Tensor, has_report: torch.Tensor,
                has_clinical: torch.Tensor) -> tuple[torch.Tensor, LossParts]:
        """Per-patient loss (B,) (diagnosis BCE where a report gives weak labels, medication BCE +
        DDI penalty where a record gives prescriptions) and the batch means of its parts."""
        diag_logits = self.diagnosis_logits(features)  # once: Opacus' per-sample hooks see one use
        diag = F.binary_cross_entropy_with_logits(
            diag_logits, diag_targets.to(features.dtype), reduction="none").mean(dim=1)
        med_logits = self.medication_logits(features, clinical, diag_logits)
        med = F.binary_cross_entropy_with_logits(
            med_logits, med_targets.to(features.dtype), reduction="none").mean(dim=1)
        ddi = ddi_penalty(torch.sigmoid(med_logits), self.ddi_adjacency)
        h = self.config
        rep, clin = has_report.to(features.dtype), has_clinical.to(features.dtype)
        loss = rep * h.diag_weight * diag + clin * (h.med_weight * med + h.ddi_weight * ddi)
        n_rep, n_clin = rep.sum().clamp(min=1), clin.sum().clamp(min=1)
        return loss, {
            "loss": loss.detach().mean(),
            "diag": (diag.detach() * rep).sum() / n_rep,
            "med": (med.detach() * clin).sum() / n_clin,
            "ddi": (ddi.detach() * clin).sum() / n_clin,
        }


class HeadsObjective:
    """Batches of :func:`head_dataset` -> :class:`ClinicalHeads` inputs (image features first)."""

    parts: tuple[str, ...] = ("loss", "diag", "med", "ddi")

    def model_inputs(self, batch: Sequence[torch.Tensor], *,
                     generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Keyword inputs of ``ClinicalHeads.forward``; deterministic (no generator use)."""
        features, clinical, has_clinical, diag, meds, has_report = batch
        return {"features": features, "clinical": clinical, "diag_targets": diag, "med_targets": meds,
                "has_report": has_report, "has_clinical": has_clinical}

    def part_counts(self, batch: Sequence[torch.Tensor]) -> dict[str, float]:
        """Reports for the diagnosis part, clinical records for medication and DDI, everyone for the total."""
        n_rep, n_clin = float(batch[5].sum()), float(batch[2].sum())
        return {"loss": float(batch[0].shape[0]), "diag": n_rep, "med": n_clin, "ddi": n_clin}


def head_dataset(backbone: MedMPT, dataset: torch.utils.data.Dataset, *, batch_size: int = 16) -> TensorDataset:
    """One item per patient of a :class:`~client_site.downstream.data.DownstreamDataset` (one study
    drawn per patient, as one pass over it draws them): ``(image features, clinical features,
    has_clinical, diagnosis targets, medication targets, has_report)``."""
    items = [dataset[i] for i in range(len(dataset))]  # type: ignore[arg-type]
    if not items:
        raise ValueError("cannot compute head features of an empty dataset")
    backbone.eval()
    features = torch.cat([encode_image_features(backbone, torch.stack([it[0] for it in items[s:s + batch_size]]).float())
                          for s in range(0, len(items), batch_size)])

    def column(position: int) -> torch.Tensor:
        return torch.stack([it[position] for it in items]).float()

    # DownstreamItem: volume, text ids, has_report, clinical, has_clinical, diagnosis, medication
    return TensorDataset(features, column(3), column(4), column(5), column(6), column(2))
