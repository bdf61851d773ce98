"""MedMPT fine-tuned for the downstream clinical tasks, with a per-example (DP-SGD ready) loss.

:class:`ClinicalMedMPT` = a pretrained :class:`~client_site.model.MedMPT` backbone plus

* diagnosis: one logit per finding of :data:`~client_site.findings.FINDINGS`, a linear head on the
  image features -- the chest and lung-zone densitometry (:mod:`client_site.downstream.densitometry`),
  the lung-nodule blob block (:mod:`client_site.downstream.nodule_blobs`) and the scan embedding --
  standardised with public statistics inside the model (:mod:`client_site.downstream.heads`);
* medication recommendation: the drugs to prescribe at this visit
  (:mod:`client_site.downstream.medication_task`): [predicted findings, clinical features (labs,
  symptoms, current medications)] -> linear -> one logit per drug of the formulary, trained with
  binary cross-entropy plus the SafeDrug DDI penalty, and recommended with interaction-aware
  selection (:mod:`client_site.downstream.drug_graph`);
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

from collections.abc import Collection, Mapping, Sequence

import torch
from torch import nn

from client_site.downstream.drug_graph import DrugGraph, select_drugs
from client_site.downstream.heads import NUM_FEATURES, ClinicalHeads, HeadConfig, densitometry_features, image_features
from client_site.model import LossParts, MedMPT, ModelConfig

__all__ = ["BACKBONE_PREFIX", "NUM_FEATURES", "ClinicalMedMPT", "HeadConfig", "densitometry_features"]

BACKBONE_PREFIX = "backbone."
"""State-dict prefix of the backbone's weights inside :class:`ClinicalMedMPT`."""


_TEXT_MODULES = ("mae_decoder", "report_encoder", "report_decoder")
"""Backbone children that are not the image encoder (the MAE decoder and the report encoder are
SSL-only: they never take part in fine-tuning)."""


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
        self.register_buffer("major_adjacency", self.graph.adjacency(major_only=True), persistent=False)
        self.clinical_heads = ClinicalHeads(self.cfg.dim, self.graph.adjacency(), self.heads)
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
    def image_features(self, volume: torch.Tensor, scan: torch.Tensor | None = None) -> torch.Tensor:
        """The heads' raw input (B, NUM_FEATURES + dim); ``scan`` is the scan embedding if already computed."""
        return image_features(volume, self.backbone.encode_scan(volume)[1] if scan is None else scan)

    def diagnosis_logits(self, volume: torch.Tensor, scan: torch.Tensor | None = None) -> torch.Tensor:
        """Volume (B, 3, D, H, W) -> finding logits (B, len(FINDINGS))."""
        return self.clinical_heads.diagnosis_logits(self.image_features(volume, scan))

    def medication_logits(self, volume: torch.Tensor, clinical_features: torch.Tensor,
                          scan: torch.Tensor | None = None) -> torch.Tensor:
        """Volume and clinical features (B, NUM_CLINICAL_FEATURES) -> drug logits (B, len(drugs))."""
        return self.clinical_heads.medication_logits(self.image_features(volume, scan), clinical_features)

    def task_logits(
        self, volume: torch.Tensor, clinical_features: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Diagnosis and medication logits from one encoding of the volume."""
        features = self.image_features(volume)
        diagnosis = self.clinical_heads.diagnosis_logits(features)
        return diagnosis, self.clinical_heads.medication_logits(features, clinical_features, diagnosis)

    @torch.no_grad()
    def recommend(
        self, volume: torch.Tensor, clinical_features: torch.Tensor, *, threshold: float | None = None,
        max_drugs: int | None = None, current: Sequence[Collection[str]] | None = None,
    ) -> list[list[str]]:
        """Drugs to prescribe to each example: :func:`select_drugs` over the major interactions.

        ``threshold`` defaults to ``HeadConfig.threshold``; ``max_drugs`` caps each list (None: no cap);
        ``current``: each example's current medications (never recommended again, nor a drug with
        a major interaction with one of them).
        """
        probabilities = torch.sigmoid(self.medication_logits(volume, clinical_features))
        return select_drugs(probabilities, self.major_adjacency, self.drugs,
                            threshold=self.heads.threshold if threshold is None else threshold,
                            max_drugs=max_drugs, current=current)

    def generate_report(self, volume: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
        """Greedy report ids (B, max_len) from the backbone's decoder (see ``MedMPT.generate_report``)."""
        return self.backbone.generate_report(volume, max_len)

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
        _, memory = self.backbone.encode_volume(volume)  # memory: (B, D + 1, dim), last = scan
        loss, parts = self.clinical_heads(self.image_features(volume, memory[:, -1]), clinical, diag_targets,
                                          med_targets, has_report, has_clinical)
        if not self.heads.train_report_decoder:
            return loss, parts  # without a trainable decoder the generation loss would only cost time
        gen = self.backbone.generation_loss(text_ids, memory)
        rep = has_report.to(loss.dtype)
        loss = loss + rep * self.heads.gen_weight * gen
        parts = {**parts, "loss": loss.detach().mean(), "gen": (gen.detach() * rep).sum() / rep.sum().clamp(min=1)}
        return loss, parts
