"""The fine-tuning objective of :func:`client_site.training.train_locally` for :class:`ClinicalMedMPT`."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class DownstreamObjective:
    """Batches of :data:`~client_site.downstream.data.DownstreamItem` -> ``ClinicalMedMPT.forward`` inputs.

    The loss is deterministic given the batch (no masks), so the generator is unused.
    """

    parts: tuple[str, ...] = ("loss", "diag", "med", "ddi", "gen")

    def model_inputs(
        self, batch: Sequence[torch.Tensor], *, generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Keyword arguments of ``ClinicalMedMPT.forward``, ``volume`` first."""
        volume, text_ids, has_report, clinical, has_clinical, diag, meds = batch
        return {
            "volume": volume, "clinical": clinical, "text_ids": text_ids, "diag_targets": diag,
            "med_targets": meds, "has_report": has_report, "has_clinical": has_clinical,
        }

    def part_counts(self, batch: Sequence[torch.Tensor]) -> dict[str, float]:
        """Examples each loss part averages over: reports for diagnosis and generation,
        clinical records for medication and DDI, everyone for the total."""
        n_rep, n_clin = float(batch[2].sum()), float(batch[4].sum())
        return {"loss": float(batch[0].shape[0]), "diag": n_rep, "gen": n_rep, "med": n_clin, "ddi": n_clin}
