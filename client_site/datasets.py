"""Patient-level datasets over the ingestion cache (``docs/contracts.md`` section 4).

The privacy unit is the patient: one dataset item = one patient, and each draw picks one of
that patient's studies at random. Poisson sampling then includes each patient with
probability q and per-sample clipping bounds the whole patient, whatever their number of
studies (docs/privacy.md).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from client_site.tokenizer import ReportTokenizer
from infra.cache_index import CachedStudy, read_cache_index

logger = logging.getLogger(__name__)

PatientItem = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""``(volume float32 (3, D, H, W), text ids int64 (L,), has_report float32 ())``."""


# One record type and one reader of the cache index for the whole runtime (infra.cache_index).
StudyRecord = CachedStudy
load_cache_index = read_cache_index


def split_patients(
    patient_keys: Iterable[str], *, held_out_fraction: float = 0.25
) -> tuple[list[str], list[str]]:
    """Deterministic train / held-out split of patient keys.

    Keys are ordered by the SHA-256 of the key and the first ``round(n * held_out_fraction)``
    are held out, so the split depends only on the keys (same rule at every site, stable
    when patients are added elsewhere in the order). Train is never empty.

    Returns
    -------
    (list of str, list of str)
        Train and held-out keys, each sorted.
    """
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
    keys = sorted(set(patient_keys), key=lambda k: hashlib.sha256(k.encode("utf-8")).hexdigest())
    n_held = min(round(len(keys) * held_out_fraction), max(len(keys) - 1, 0))
    return sorted(keys[n_held:]), sorted(keys[:n_held])


class PatientDataset(Dataset[PatientItem]):
    """One item per patient; each ``__getitem__`` draws one of the patient's studies.

    The k-th draw of patient i uses the study chosen by ``np.random.default_rng((seed, i, k))``,
    so a run is reproducible given ``seed`` and the order of accesses; :meth:`get` with an
    explicit ``draw`` is a pure function (evaluation uses ``draw=0``).

    Parameters
    ----------
    cache_dir : str or Path
        The ingestion cache (``index.json`` + ``volumes/``).
    patient_keys : sequence of str
        Patients of this dataset (e.g. one side of :func:`split_patients`); each must have at
        least one study in the index.
    tokenizer : ReportTokenizer
        Report tokenizer.
    max_len : int
        Text length in tokens (``ModelConfig.text_max_len``).
    seed : int
        Seed of the study draws.
    cache_size : int
        Volumes kept in memory (LRU). (default: 64)
    """

    def __init__(
        self, cache_dir: str | Path, patient_keys: Sequence[str], tokenizer: ReportTokenizer, *,
        max_len: int, seed: int, cache_size: int = 64,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.tokenizer = tokenizer
        self.max_len = max_len
        self.seed = seed
        self.cache_size = cache_size
        by_patient: dict[str, list[StudyRecord]] = {}
        for record in load_cache_index(self.cache_dir):
            by_patient.setdefault(record.patient_key, []).append(record)
        if len(set(patient_keys)) != len(patient_keys):
            raise ValueError("patient_keys has duplicates: a patient must be exactly one item")
        missing = [k for k in patient_keys if k not in by_patient]
        if missing:
            raise ValueError(f"{len(missing)} patient keys have no study in the cache, e.g. {missing[0]!r}")
        self.patient_keys: list[str] = list(patient_keys)
        self._studies = [sorted(by_patient[k], key=lambda r: r.study_key) for k in self.patient_keys]
        self._draws = [0] * len(self.patient_keys)
        self._volumes: OrderedDict[str, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self.patient_keys)

    def studies_of(self, index: int) -> list[StudyRecord]:
        """All studies of patient ``index`` (sorted by study key)."""
        return list(self._studies[index])

    def study_of(self, index: int, *, draw: int) -> StudyRecord:
        """The study that draw number ``draw`` of patient ``index`` uses."""
        studies = self._studies[index]
        if len(studies) == 1:
            return studies[0]
        pick = np.random.default_rng((self.seed, index, draw)).integers(len(studies))
        return studies[int(pick)]

    def get(self, index: int, *, draw: int) -> PatientItem:
        """Item of patient ``index`` for an explicit draw number (pure, no counter)."""
        record = self.study_of(index, draw=draw)
        volume = self._load_volume(record.volume)
        text = record.report if record.report else ""
        ids = self.tokenizer.encode(text, self.max_len)
        has_report = torch.tensor(1.0 if record.report else 0.0, dtype=torch.float32)
        return volume, ids, has_report

    def __getitem__(self, index: int) -> PatientItem:
        draw = self._draws[index]
        self._draws[index] += 1
        return self.get(index, draw=draw)

    def _load_volume(self, rel_path: str) -> torch.Tensor:
        cached = self._volumes.get(rel_path)
        if cached is not None:
            self._volumes.move_to_end(rel_path)
            return cached
        array = np.load(self.cache_dir / rel_path, allow_pickle=False)
        if array.ndim != 4 or array.shape[0] != 3:
            raise ValueError(f"{rel_path}: expected a (3, D, H, W) volume, got shape {array.shape}")
        volume = torch.from_numpy(array.astype(np.float32, copy=False))
        if self.cache_size > 0:
            self._volumes[rel_path] = volume
            while len(self._volumes) > self.cache_size:
                self._volumes.popitem(last=False)
        return volume


class PooledPatientDataset(Dataset[Any]):
    """Several sites' patient datasets as one (the centralised "pooled data" baseline).

    Item ``i`` is item ``i - offset`` of the dataset it falls in (datasets in the given order),
    so each patient is still exactly one item; :meth:`get` and :meth:`study_of` keep the
    explicit-draw interface of :class:`PatientDataset` used by evaluation.

    Parameters
    ----------
    datasets : sequence of PatientDataset
        One per site, e.g. :class:`~client_site.downstream.data.DownstreamDataset`; at least one.
    """

    def __init__(self, datasets: Sequence[PatientDataset]) -> None:
        if not datasets:
            raise ValueError("need at least one dataset to pool")
        self.datasets = list(datasets)
        self._ends = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self) -> int:
        return int(self._ends[-1])

    def _locate(self, index: int) -> tuple[PatientDataset, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"patient index {index} out of range for {len(self)} pooled patients")
        part = int(np.searchsorted(self._ends, index, side="right"))
        return self.datasets[part], index - (self._ends[part - 1] if part else 0)

    def study_of(self, index: int, *, draw: int) -> StudyRecord:
        """The study that draw number ``draw`` of pooled patient ``index`` uses."""
        dataset, local = self._locate(index)
        return dataset.study_of(local, draw=draw)

    def get(self, index: int, *, draw: int) -> Any:
        """Item of pooled patient ``index`` for an explicit draw number."""
        dataset, local = self._locate(index)
        return dataset.get(local, draw=draw)

    def __getitem__(self, index: int) -> Any:
        dataset, local = self._locate(index)
        return dataset[local]
