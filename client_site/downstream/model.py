"""MedMPT fine-tuned for the downstream clinical tasks, with a per-example (DP-SGD ready) loss.

:class:`ClinicalMedMPT` = a pretrained :class:`~client_site.model.MedMPT` backbone plus

* diagnosis: one logit per finding of :data:`~client_site.findings.FINDINGS`, from a
  per-finding attention pooling of the slice ViT's patch tokens (:class:`FindingAttentionPool`:
  a small lesion is a few of the D * N patches and a mean over all of them dilutes it) plus a
  linear read of the scan embedding (diffuse findings) plus a linear read of the chest's
  density histograms (:mod:`client_site.downstream.densitometry`);
* medication recommendation: [scan embedding, clinical features] -> MLP -> one logit per drug of
  the formulary, trained with binary cross-entropy plus the SafeDrug DDI penalty, and
  recommended with interaction-aware selection (:mod:`client_site.downstream.drug_graph`);
* report generation: the backbone's causal report decoder, cross-attending to the memory of the
  full (unmasked) volume, trained with teacher forcing.

(Ma et al., "A vision-language pretrained transformer for versatile clinical respiratory disease
applications", Nat. Biomed. Eng. 2025, fine-tune the same tasks on top of MedMPT.)

Every loss term depends on one example only, so the loss vector ``(B,)`` is what DP-SGD clips per
patient. The interaction graph is a non-persistent buffer: public reference data, never trained
and not part of the exchanged weights. The backbone's SSL-only modules (MAE decoder, masked
report encoder) are frozen: they take no part in fine-tuning, and a trainable parameter that
receives no per-sample gradient would make Opacus' optimizer fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from client_site.downstream.clinical_features import NUM_CLINICAL_FEATURES
from client_site.downstream.densitometry import (
    NUM_DENSITY_FEATURES,
    NUM_ZONE_FEATURES,
    chest_densitometry,
    lung_zone_densitometry,
)
from client_site.downstream.drug_graph import DrugGraph, ddi_penalty, select_drugs
from client_site.findings import FINDINGS
from client_site.model import LossParts, MedMPT, ModelConfig, init_weights

NUM_FEATURES = NUM_DENSITY_FEATURES + NUM_ZONE_FEATURES
"""Width of the parameter-free densitometry the diagnosis head reads (:func:`densitometry_features`)."""

BACKBONE_PREFIX = "backbone."
"""State-dict prefix of the backbone's weights inside :class:`ClinicalMedMPT`."""


@dataclass(frozen=True)
class HeadConfig:
    """Downstream heads and loss weights of :class:`ClinicalMedMPT`.

    Parameters
    ----------
    medication_hidden : int
        Hidden width of the medication MLP. (default: 64)
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

    medication_hidden: int = 64
    diag_weight: float = 1.0
    med_weight: float = 1.0
    ddi_weight: float = 0.05
    gen_weight: float = 1.0
    threshold: float = 0.5
    train_encoder: bool = False
    train_report_decoder: bool = False

    def __post_init__(self) -> None:
        if self.medication_hidden < 1:
            raise ValueError(f"medication_hidden must be >= 1, got {self.medication_hidden}")
        if min(self.diag_weight, self.med_weight, self.ddi_weight, self.gen_weight) < 0:
            raise ValueError("loss weights must be >= 0")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")


_TEXT_MODULES = ("mae_decoder", "report_encoder", "report_decoder")
"""Backbone children that are not the image encoder (the MAE decoder and the report encoder are
SSL-only: they never take part in fine-tuning)."""


def densitometry_features(volume: torch.Tensor) -> torch.Tensor:
    """Chest densitometry and lung-zone densitometry, ``(B, C, D, H, W)`` -> ``(B, NUM_FEATURES)``."""
    return torch.cat([chest_densitometry(volume), lung_zone_densitometry(volume)], dim=1)


class FindingAttentionPool(nn.Module):
    """Per-finding attention pooling of tokens (attention-based multiple-instance learning).

    Each finding ``f`` scores every token (evidence ``e_f``) and weighs the tokens with its own
    softmax attention ``a_f``; its logit is ``sum_t softmax_t(a_f)[t] * e_f[t]``. At
    initialisation the attention is near uniform (a mean of the evidence); training focuses it
    on the few tokens that show the finding (Ilse et al., "Attention-based deep multiple
    instance learning", ICML 2018). Batch-first Linear layers on ``(B, T, dim)``: Opacus
    per-sample gradients stay per patient.

    Parameters
    ----------
    dim : int
        Token width.
    num_findings : int
        Outputs, one per finding.
    """

    def __init__(self, dim: int, num_findings: int) -> None:
        super().__init__()
        self.attention = nn.Linear(dim, num_findings)
        self.evidence = nn.Linear(dim, num_findings)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (B, T, dim) -> pooled logits (B, num_findings)."""
        weights = torch.softmax(self.attention(tokens), dim=1)
        return (weights * self.evidence(tokens)).sum(dim=1)


class ClinicalMedMPT(nn.Module):
    """Diagnosis, medication recommendation and report generation on a MedMPT backbone.

    Parameters
    ----------
    cfg : ModelConfig, optional
        Backbone sizes (default: ``ModelConfig()``).
    heads : HeadConfig, optional
        Head sizes and loss weights (default: ``HeadConfig()``).
    graph : DrugGraph, optional
        Formulary and interactions (default: :meth:`DrugGraph.consortium`).
    """

    def __init__(
        self, cfg: ModelConfig | None = None, *, heads: HeadConfig | None = None,
        graph: DrugGraph | None = None,
    ) -> None:
        super().__init__()
        self.backbone = MedMPT(cfg)
        self.cfg = self.backbone.cfg
        self.heads = heads or HeadConfig()
        self.graph = graph or DrugGraph.consortium()
        dim = self.cfg.dim
        self.diagnosis_head = nn.Linear(dim, len(FINDINGS))
        self.finding_pool = FindingAttentionPool(dim, len(FINDINGS))
        # No LayerNorm: it would normalise away the small differences between patients' profiles
        # (measured on the earlier whole-volume histogram: held-out AUC 0.56 with it, 0.6 without).
        self.density_head = nn.Linear(NUM_FEATURES, len(FINDINGS))
        self.medication_head = nn.Sequential(
            nn.Linear(dim + NUM_CLINICAL_FEATURES, self.heads.medication_hidden),
            nn.GELU(),
            nn.Linear(self.heads.medication_hidden, len(self.graph.drugs)),
        )
        for module in (self.diagnosis_head, self.finding_pool, self.density_head, self.medication_head):
            module.apply(init_weights)
        self.register_buffer("ddi_adjacency", self.graph.adjacency(), persistent=False)
        self.register_buffer("major_adjacency", self.graph.adjacency(major_only=True), persistent=False)
        self.backbone.requires_grad_(False)
        if self.heads.train_encoder:
            for name, module in self.backbone.named_children():
                if name not in _TEXT_MODULES:
                    module.requires_grad_(True)
        if self.heads.train_report_decoder:
            self.backbone.report_decoder.requires_grad_(True)

    @classmethod
    def from_pretrained(
        cls, state: Mapping[str, torch.Tensor], cfg: ModelConfig, *, heads: HeadConfig | None = None,
        graph: DrugGraph | None = None,
    ) -> ClinicalMedMPT:
        """A new model whose weights come from ``state`` (see :meth:`load_weights`)."""
        model = cls(cfg, heads=heads, graph=graph)
        model.load_weights(state)
        return model

    def load_weights(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load a pretrained ``MedMPT`` state dict into the backbone (heads keep their init),
        or, when its keys carry :data:`BACKBONE_PREFIX`, a whole ``ClinicalMedMPT`` state dict.
        Both loads are strict."""
        if any(key.startswith(BACKBONE_PREFIX) for key in state):
            self.load_state_dict(state, strict=True)
        else:
            self.backbone.load_state_dict(state, strict=True)

    @property
    def drugs(self) -> tuple[str, ...]:
        """Drug names, in the order of the medication logits."""
        return self.graph.drugs

    # ------------------------------------------------------------- inference
    def diagnosis_logits(self, volume: torch.Tensor) -> torch.Tensor:
        """Volume (B, 3, D, H, W) -> finding logits (B, len(FINDINGS))."""
        tokens, memory = self.backbone.encode_volume(volume)
        return self._diagnosis(volume, tokens, memory[:, -1])

    def medication_logits(self, volume: torch.Tensor, clinical_features: torch.Tensor) -> torch.Tensor:
        """Volume and clinical features (B, NUM_CLINICAL_FEATURES) -> drug logits (B, len(drugs))."""
        return self._medication(self.backbone.encode_scan(volume)[1], clinical_features)

    def task_logits(
        self, volume: torch.Tensor, clinical_features: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Diagnosis and medication logits from one encoding of the volume."""
        tokens, memory = self.backbone.encode_volume(volume)
        scan = memory[:, -1]
        return self._diagnosis(volume, tokens, scan), self._medication(scan, clinical_features)

    @torch.no_grad()
    def recommend(
        self, volume: torch.Tensor, clinical_features: torch.Tensor, *, threshold: float | None = None,
        max_drugs: int | None = None,
    ) -> list[list[str]]:
        """Recommended drugs of each example: :func:`select_drugs` over the major interactions.

        ``threshold`` defaults to ``HeadConfig.threshold``; ``max_drugs`` caps each list (None: no cap).
        """
        probabilities = torch.sigmoid(self.medication_logits(volume, clinical_features))
        return select_drugs(probabilities, self.major_adjacency, self.drugs,
                            threshold=self.heads.threshold if threshold is None else threshold,
                            max_drugs=max_drugs)

    def generate_report(self, volume: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
        """Greedy report ids (B, max_len) from the backbone's decoder (see ``MedMPT.generate_report``)."""
        return self.backbone.generate_report(volume, max_len)

    def _diagnosis(self, volume: torch.Tensor, tokens: torch.Tensor, scan: torch.Tensor) -> torch.Tensor:
        """Finding logits: attention-pooled patch evidence + scan embedding + chest densitometry."""
        return (self.finding_pool(tokens) + self.diagnosis_head(scan)
                + self.density_head(densitometry_features(volume)))

    def _medication(self, scan: torch.Tensor, clinical_features: torch.Tensor) -> torch.Tensor:
        if clinical_features.dim() != 2 or clinical_features.shape[1] != NUM_CLINICAL_FEATURES:
            raise ValueError(f"clinical_features must be (B, {NUM_CLINICAL_FEATURES}), "
                             f"got {tuple(clinical_features.shape)}")
        return self.medication_head(torch.cat([scan, clinical_features.to(scan.dtype)], dim=1))

    # -------------------------------------------------------------- training
    def forward(
        self, volume: torch.Tensor, clinical: torch.Tensor, text_ids: torch.Tensor,
        diag_targets: torch.Tensor, med_targets: torch.Tensor, has_report: torch.Tensor,
        has_clinical: torch.Tensor,
    ) -> tuple[torch.Tensor, LossParts]:
        """Per-example fine-tuning loss (B,) and the batch means of its parts (``loss``,
        ``diag``, ``med``, ``ddi``, and ``gen`` when the report decoder is trained; each over
        the examples it applies to).

        Parameters
        ----------
        volume : torch.Tensor
            ``(B, 3, D, H, W)`` float in [0, 1].
        clinical : torch.Tensor
            ``(B, NUM_CLINICAL_FEATURES)`` (:func:`~client_site.downstream.clinical_features.clinical_features`).
        text_ids : torch.Tensor
            ``(B, L)`` report ids (BOS/tokens/EOS/PAD), teacher-forcing input and target.
        diag_targets : torch.Tensor
            ``(B, len(FINDINGS))`` 0/1 weak labels read from the study's own report.
        med_targets : torch.Tensor
            ``(B, len(drugs))`` 0/1 prescribed drugs of the study's clinical record.
        has_report, has_clinical : torch.Tensor
            ``(B,)`` 1.0 where the study has a report / a clinical record: the diagnosis and
            generation terms count only with a report, the medication and DDI terms only with
            a record.
        """
        tokens, memory = self.backbone.encode_volume(volume)  # memory: (B, D + 1, dim), last = scan
        scan = memory[:, -1]
        diag = F.binary_cross_entropy_with_logits(
            self._diagnosis(volume, tokens, scan), diag_targets.to(scan.dtype), reduction="none").mean(dim=1)
        med_logits = self._medication(scan, clinical)
        med = F.binary_cross_entropy_with_logits(
            med_logits, med_targets.to(scan.dtype), reduction="none").mean(dim=1)
        ddi = ddi_penalty(torch.sigmoid(med_logits), self.ddi_adjacency)
        # Without a trainable decoder the generation loss would only cost time (no gradient).
        gen = self.backbone.generation_loss(text_ids, memory) if self.heads.train_report_decoder \
            else None

        h = self.heads
        rep, clin = has_report.to(scan.dtype), has_clinical.to(scan.dtype)
        report_loss = h.diag_weight * diag + (0.0 if gen is None else h.gen_weight * gen)
        loss = rep * report_loss + clin * (h.med_weight * med + h.ddi_weight * ddi)
        n_rep, n_clin = rep.sum().clamp(min=1), clin.sum().clamp(min=1)
        parts = {
            "loss": loss.detach().mean(),
            "diag": (diag.detach() * rep).sum() / n_rep,
            "med": (med.detach() * clin).sum() / n_clin,
            "ddi": (ddi.detach() * clin).sum() / n_clin,
        }
        if gen is not None:
            parts["gen"] = (gen.detach() * rep).sum() / n_rep
        return loss, parts
