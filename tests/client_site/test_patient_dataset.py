"""One dataset item per patient, deterministic study draws, hash-based patient split."""

import pytest
import torch

from client_site.datasets import PatientDataset, load_cache_index, split_patients
from client_site.tokenizer import ReportTokenizer


def _patients(cache):
    return sorted({r.patient_key for r in load_cache_index(cache)})


def test_index_is_read(fake_cache):
    # Execute
    records = load_cache_index(fake_cache)
    # Assert
    assert len(records) == 14
    assert sum(r.patient_key == "p000" for r in records) == 3
    assert any(r.report is None for r in records)


def test_one_item_per_patient(fake_cache, tiny_cfg):
    # Prepare: p000 has three studies
    keys = _patients(fake_cache)
    # Execute
    ds = PatientDataset(fake_cache, keys, ReportTokenizer(), max_len=tiny_cfg.text_max_len, seed=0)
    # Assert
    assert len(ds) == len(keys) == 12
    assert len(ds.studies_of(keys.index("p000"))) == 3
    drawn = {ds.study_of(keys.index("p000"), draw=k).study_key for k in range(40)}
    assert len(drawn) == 3  # every study of the patient is reachable


def test_item_is_a_tuple_of_tensors(fake_cache, tiny_cfg):
    # Prepare
    ds = PatientDataset(fake_cache, _patients(fake_cache), ReportTokenizer(), max_len=48, seed=0)
    # Execute
    volume, ids, has_report = ds[1]
    # Assert
    assert volume.dtype == torch.float32
    assert volume.shape == (3, tiny_cfg.num_slices, tiny_cfg.image_size, tiny_cfg.image_size)
    assert ids.shape == (48,) and ids.dtype == torch.int64
    assert has_report.shape == () and has_report.item() in (0.0, 1.0)


def test_draws_are_deterministic_given_seed(fake_cache):
    # Prepare
    keys = _patients(fake_cache)
    a = PatientDataset(fake_cache, keys, ReportTokenizer(), max_len=48, seed=7)
    b = PatientDataset(fake_cache, keys, ReportTokenizer(), max_len=48, seed=7)
    # Execute
    seq_a = [a[0][1] for _ in range(6)]
    seq_b = [b[0][1] for _ in range(6)]
    # Assert
    assert all(torch.equal(x, y) for x, y in zip(seq_a, seq_b))


def test_unknown_or_duplicate_patients_are_refused(fake_cache):
    with pytest.raises(ValueError, match="no study"):
        PatientDataset(fake_cache, ["nobody"], ReportTokenizer(), max_len=48, seed=0)
    with pytest.raises(ValueError, match="duplicates"):
        PatientDataset(fake_cache, ["p001", "p001"], ReportTokenizer(), max_len=48, seed=0)


def test_split_is_deterministic_disjoint_and_keeps_train():
    # Prepare
    keys = [f"p{i:03d}" for i in range(40)]
    # Execute
    train, held = split_patients(keys, held_out_fraction=0.25)
    train2, held2 = split_patients(reversed(keys), held_out_fraction=0.25)
    # Assert
    assert (train, held) == (train2, held2)
    assert len(held) == 10 and not set(train) & set(held) and set(train) | set(held) == set(keys)
    assert split_patients(["only"], held_out_fraction=0.5) == (["only"], [])
    assert split_patients(["a", "b"], held_out_fraction=0.9)[0] != []
