"""Fine-tuning data at a site: one item per patient, with targets the site already has.

No ground truth is used for training (``truth/labels.csv`` is for evaluation only):

* diagnosis targets are weak labels read from the study's own report text by the rule-based
  extractor (:func:`~client_site.clinical_metrics.extract_findings`, English or Chinese), as
  CheXpert-style labellers do (Irvin et al., "CheXpert", AAAI 2019); a study without a report
  has none (``has_report`` = 0 masks its diagnosis and generation terms);
* medication targets are the drugs prescribed at the visit that the patient did not already take
  (:func:`~client_site.downstream.medication_task.prescribed_now`) as a multi-hot vector over the
  formulary; the current medications are an input (in the clinical features). A study without a
  record has none (``has_clinical`` = 0 masks them).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from client_site.clinical_metrics import findings_vector
from client_site.datasets import PatientDataset, StudyRecord, load_cache_index, split_patients
from client_site.downstream.clinical_features import clinical_features
from client_site.downstream.drug_graph import DrugGraph
from client_site.downstream.medication_task import prescribed_now
from client_site.findings import FINDINGS
from client_site.tokenizer import ReportTokenizer

DownstreamItem = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                       torch.Tensor, torch.Tensor]
"""``(volume (3, D, H, W), text ids (L,), has_report (), clinical features (NUM_CLINICAL_FEATURES,),
has_clinical (), diagnosis targets (len(FINDINGS),), medication targets (len(drugs),))``, float32
except the int64 text ids."""


def diagnosis_targets(record: StudyRecord) -> torch.Tensor:
    """0/1 findings the study's report affirms, ``(len(FINDINGS),)`` float32 (zeros without report)."""
    if not record.report:
        return torch.zeros(len(FINDINGS), dtype=torch.float32)
    return torch.tensor(findings_vector(record.report, record.language), dtype=torch.float32)


class DownstreamDataset(PatientDataset):
    """:class:`~client_site.datasets.PatientDataset` whose items are :data:`DownstreamItem`.

    Same privacy unit (one item = one patient, one study drawn per access) and parameters,
    plus ``graph``: the formulary of the medication targets (default: the consortium's).
    """

    def __init__(
        self, cache_dir: str | Path, patient_keys: Sequence[str], tokenizer: ReportTokenizer, *,
        max_len: int, seed: int, cache_size: int = 64, graph: DrugGraph | None = None,
    ) -> None:
        super().__init__(cache_dir, patient_keys, tokenizer, max_len=max_len, seed=seed,
                         cache_size=cache_size)
        self.graph = graph or DrugGraph.consortium()

    def get(self, index: int, *, draw: int) -> DownstreamItem:  # type: ignore[override]
        """Item of patient ``index`` for an explicit draw number (pure, no counter)."""
        volume, text_ids, has_report = super().get(index, draw=draw)
        record = self.study_of(index, draw=draw)
        has_clinical = record.clinical is not None
        meds = self.graph.multi_hot(prescribed_now(record.clinical, self.graph.drugs)) if has_clinical \
            else torch.zeros(len(self.graph.drugs))
        return (volume, text_ids, has_report, clinical_features(record.clinical),
                torch.tensor(1.0 if has_clinical else 0.0), diagnosis_targets(record), meds)


def site_split(
    cache_dir: str | Path, *, max_len: int, seed: int = 0, held_out_fraction: float = 0.25,
    graph: DrugGraph | None = None,
) -> tuple[DownstreamDataset, DownstreamDataset]:
    """Train and held-out :class:`DownstreamDataset` of one site's cache, split as the federated
    runs split it (:func:`~client_site.datasets.split_patients`).

    Parameters
    ----------
    cache_dir : str or Path
        The site's ingestion cache.
    max_len : int
        Report length in tokens (``ModelConfig.text_max_len``).
    seed : int
        Seed of the study draws of the training set (the held-out set uses seed 0). (default: 0)
    held_out_fraction : float
        Share of patients held out. (default: 0.25)
    graph : DrugGraph, optional
        Formulary of the medication targets (default: the consortium's).
    """
    keys = sorted({r.patient_key for r in load_cache_index(cache_dir)})
    train_keys, held_keys = split_patients(keys, held_out_fraction=held_out_fraction)
    tokenizer = ReportTokenizer()
    return (DownstreamDataset(cache_dir, train_keys, tokenizer, max_len=max_len, seed=seed, graph=graph),
            DownstreamDataset(cache_dir, held_keys, tokenizer, max_len=max_len, seed=0, graph=graph))
