"""The privacy unit is the patient: a patient with several studies is one sample, everywhere."""

import json
from collections import Counter

import numpy as np
import pytest
import torch

from client_site.datasets import PatientDataset, load_cache_index
from client_site.layout import SiteLayout
from client_site.site_config import write_site_config
from client_site.site_runtime import RoundRequest, SiteRuntime
from client_site.tokenizer import ReportTokenizer
from client_site.training import TrainConfig
from federation.config import FederationConfig
from federation.presets import get_preset
from federation.server_app import initial_arrays
from privacy.dp_training import poisson_data_loader
from privacy.ledger import PrivacyLedger

TINY = get_preset("tiny")
STUDIES_PER_PATIENT = [3, 1, 2, 1, 4, 1, 1, 2, 1, 3, 1, 1]  # 12 patients, 21 studies


@pytest.fixture(scope="module")
def multi_study_site(tmp_path_factory):
    """An ingested site (tiny preset grid) where most patients have several studies."""
    site = tmp_path_factory.mktemp("multi") / "hospital-m"
    cache = SiteLayout(site).cache_dir
    (cache / "volumes").mkdir(parents=True)
    shape = tuple(TINY.preprocess.shape)
    rng = np.random.default_rng(0)
    studies = []
    for p, k in enumerate(STUDIES_PER_PATIENT):
        for s in range(k):
            key = f"s{p:02d}{s}"
            np.save(cache / "volumes" / f"{key}.npy", rng.random((3, *shape)).astype(np.float16))
            studies.append({"study_key": key, "patient_key": f"p{p:02d}", "volume": f"volumes/{key}.npy",
                            "report": f"FINDINGS: study {s} of patient {p}.", "language": "en",
                            "clinical": None})
    (cache / "index.json").write_text(json.dumps({"preprocess": {"shape": list(shape)}, "studies": studies}))
    write_site_config(site, name="hospital-m", epsilon=9.0, delta=1e-5)
    return site


def _dataset(site, keys):
    return PatientDataset(SiteLayout(site).cache_dir, keys, ReportTokenizer(),
                          max_len=TINY.model.text_max_len, seed=0)


def test_dataset_has_one_item_per_patient(multi_study_site):
    # Prepare
    records = load_cache_index(SiteLayout(multi_study_site).cache_dir)
    keys = sorted({r.patient_key for r in records})
    # Execute
    dataset = _dataset(multi_study_site, keys)
    # Assert
    assert len(records) == sum(STUDIES_PER_PATIENT) == 21
    assert len(dataset) == len(STUDIES_PER_PATIENT) == 12
    assert [len(dataset.studies_of(i)) for i in range(len(dataset))] == STUDIES_PER_PATIENT
    # every draw of a patient is one of *their* studies, never another patient's
    for i in range(len(dataset)):
        own = {s.study_key for s in dataset.studies_of(i)}
        assert {dataset.study_of(i, draw=k).study_key for k in range(20)} <= own


def test_poisson_sampling_includes_each_patient_with_rate_q(multi_study_site):
    # Prepare
    keys = sorted({r.patient_key for r in load_cache_index(SiteLayout(multi_study_site).cache_dir)})
    dataset = _dataset(multi_study_site, keys)
    q, batches = 0.25, 4000
    loader = poisson_data_loader(dataset, sample_rate=q, generator=torch.Generator().manual_seed(0))
    # Execute: the sampler alone (indices), no data loading
    drawn = []
    while len(drawn) < batches:  # one pass of the sampler is about 1/q batches
        drawn.extend(loader.batch_sampler)
    counts = Counter(i for batch in drawn for i in batch)
    # Assert: indices are patients, each at most once per batch, each at rate q whatever its
    # number of studies (a patient with 4 studies is not sampled 4x as often)
    assert all(len(set(batch)) == len(batch) for batch in drawn)
    assert set(counts) == set(range(12))
    rates = np.array([counts[i] / len(drawn) for i in range(12)])
    assert np.all(np.abs(rates - q) < 0.035)  # 5 binomial standard deviations
    full = next(iter(poisson_data_loader(dataset, sample_rate=1.0, generator=torch.Generator())))
    assert full[0].shape[0] == 12  # q = 1: the batch is every patient once, one study each


def test_ledger_sample_rate_counts_patients_not_studies(multi_study_site):
    # Prepare
    runtime = SiteRuntime(multi_study_site)
    torch.set_num_threads(1)
    state = initial_arrays(FederationConfig(model_preset="tiny")).to_torch_state_dict()
    train = TrainConfig(local_steps=1, expected_batch_size=4, noise_multiplier=1.0)
    request = RoundRequest(run_id="unit", round=1, model=TINY.model,
                           input_shape=tuple(TINY.preprocess.shape), train=train)
    train_patients = len(runtime.train_keys)
    train_studies = sum(STUDIES_PER_PATIENT[int(k[1:])] for k in runtime.train_keys)
    assert train_studies > train_patients  # the split kept multi-study patients in training
    # Execute
    _, metrics = runtime.train_round(state, request)
    # Assert
    (entry, *_) = PrivacyLedger(SiteLayout(multi_study_site).ledger_path).entries
    assert entry["sample_rate"] == pytest.approx(4 / train_patients)
    assert metrics["sample_rate"] == pytest.approx(4 / train_patients)
    assert metrics["num-examples"] == train_patients
