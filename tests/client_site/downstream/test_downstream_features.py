"""Clinical features: fixed transforms, hashed symptom text in any language, no fitting."""

import math
import zlib

import pytest
import torch

from client_site.downstream.clinical_features import (
    AGE_REFERENCE_YEARS,
    LAB_REFERENCE,
    NUM_CLINICAL_FEATURES,
    NUMERIC_FEATURES,
    TEXT_BUCKETS,
    age_years,
    clinical_features,
    symptom_features,
)

RECORD = {
    "age": 67, "sex": "F", "symptoms": ["fever", "productive cough"],
    "labs": {"wbc": 15.0, "crp": 120.0, "procalcitonin": 2.0, "spo2": 91.0, "eosinophils": 0.05},
    "medications": ["azithromycin"],
}


def test_numeric_features_are_the_documented_fixed_transforms():
    # Execute
    x = clinical_features(RECORD)
    # Assert
    expected = [math.log1p(15.0), math.log1p(120.0), math.log1p(2.0), 0.0, 0.9, 0.05, 0.67, 0.0, 1.0, 1.0]
    assert x.shape == (NUM_CLINICAL_FEATURES,) and x.dtype == torch.float32
    torch.testing.assert_close(x[: len(NUMERIC_FEATURES)], torch.tensor(expected))


def test_missing_values_use_the_fixed_references_and_no_record_is_all_zero():
    # Prepare
    sparse = {"age": "018M", "sex": None, "symptoms": [], "labs": {"procalcitonin": None}}
    # Execute
    x = dict(zip(NUMERIC_FEATURES, clinical_features(sparse).tolist()))
    # Assert
    assert x["log1p_wbc"] == pytest.approx(math.log1p(LAB_REFERENCE["wbc"]))
    assert x["spo2_deficit"] == pytest.approx((100 - LAB_REFERENCE["spo2"]) / 10)
    assert (x["log1p_procalcitonin"], x["procalcitonin_missing"]) == (0.0, 1.0)
    assert x["age"] == pytest.approx(1.5 / 100) and (x["sex_male"], x["sex_female"]) == (0.0, 0.0)
    assert x["has_clinical"] == 1.0
    assert age_years(None) == age_years("unknown") == AGE_REFERENCE_YEARS
    assert not clinical_features(None).any()


def test_symptom_text_is_hashed_with_crc32_in_any_language():
    # Prepare: the documented features of one Chinese symptom (a run and its bigrams)
    features = ["w:干咳发热", "b:干咳", "b:咳发", "b:发热"]
    buckets = {zlib.crc32(f.encode("utf-8")) % TEXT_BUCKETS for f in features}
    # Execute
    zh = symptom_features(["干咳发热"])
    en = symptom_features(["dry cough", "fever"])
    # Assert
    assert set(zh.nonzero().flatten().tolist()) == buckets
    assert zh.norm().item() == pytest.approx(1.0) and en.norm().item() == pytest.approx(1.0)
    assert not torch.equal(zh, en)
    assert torch.equal(en, symptom_features(["FEVER", "dry  cough"]))  # order, case, spacing
    assert not symptom_features([]).any()


def test_features_of_a_record_do_not_depend_on_other_records():
    # Prepare: nothing is fitted, so a record maps the same before and after seeing others
    before = clinical_features(RECORD)
    for other in ({"sex": "M", "symptoms": ["咳嗽"], "labs": {}}, {"age": 30, "labs": {"crp": 1e4}}):
        clinical_features(other)
    # Execute
    after = clinical_features(dict(RECORD))
    # Assert
    assert torch.equal(before, after)
    assert clinical_features({**RECORD, "sex": "男"})[7] == 1.0  # sex in Chinese
