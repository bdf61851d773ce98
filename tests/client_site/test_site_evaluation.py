"""Held-out SSL losses and the linear findings probe."""

import math

import numpy as np
import pytest
import torch

from client_site.datasets import PatientDataset, load_cache_index
from client_site.evaluation import evaluate_ssl, probe_embeddings, probe_findings
from client_site.findings import FINDINGS
from client_site.model import MedMPT
from client_site.tokenizer import ReportTokenizer

pytestmark = pytest.mark.usefixtures("single_thread")


def test_probe_is_perfect_on_separable_embeddings():
    # Prepare: finding j is present iff coordinate j > 0, with a margin of 2
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(60, 8)), rng.normal(size=(30, 8))
    train[:, :5] += 2 * np.sign(train[:, :5])
    test[:, :5] += 2 * np.sign(test[:, :5])
    y_train = (train[:, : len(FINDINGS)] > 0).astype(int)
    y_test = (test[:, : len(FINDINGS)] > 0).astype(int)
    # Execute
    out = probe_embeddings(train, test, y_train, y_test)
    # Assert
    assert all(out[f"probe_auc_{f}"] == 1.0 for f in FINDINGS)
    assert out["probe_auc_macro"] == 1.0 and out["probe_findings_defined"] == len(FINDINGS)


def test_single_class_findings_are_nan_and_left_out_of_the_macro():
    # Prepare: "nodule" never present in test, "emphysema" never in train
    rng = np.random.default_rng(1)
    train, test = rng.normal(size=(40, 6)), rng.normal(size=(20, 6))
    y_train = (train[:, :5] > 0).astype(int)
    y_test = (test[:, :5] > 0).astype(int)
    y_test[:, 0] = 0
    y_train[:, 3] = 1
    # Execute
    out = probe_embeddings(train, test, y_train, y_test)
    # Assert
    assert math.isnan(out["probe_auc_nodule"]) and math.isnan(out["probe_auc_emphysema"])
    defined = [out[f"probe_auc_{f}"] for f in ("consolidation", "ground_glass_opacity", "pleural_effusion")]
    assert out["probe_findings_defined"] == 3
    assert out["probe_auc_macro"] == np.mean(defined)


def test_evaluation_on_the_fake_cache(fake_cache, tiny_cfg):
    # Prepare
    keys = sorted({r.patient_key for r in load_cache_index(fake_cache)})
    ds_train = PatientDataset(fake_cache, keys[:8], ReportTokenizer(), max_len=tiny_cfg.text_max_len, seed=0)
    ds_test = PatientDataset(fake_cache, keys[8:], ReportTokenizer(), max_len=tiny_cfg.text_max_len, seed=0)
    torch.manual_seed(0)
    model = MedMPT(tiny_cfg)
    y_train = np.tile([[0, 1, 0, 1, 0], [1, 0, 1, 0, 1]], (4, 1))
    y_test = np.tile([[0, 1, 0, 1, 0], [1, 0, 1, 0, 1]], (2, 1))
    # Execute
    ssl1 = evaluate_ssl(model, ds_test, seed=0)
    ssl2 = evaluate_ssl(model, ds_test, seed=0)
    probe = probe_findings(model, ds_train, ds_test, y_train, y_test)
    # Assert
    assert set(ssl1) == {"ssl_loss", "ssl_mim", "ssl_mlm", "ssl_gen"}
    assert ssl1 == ssl2 and all(math.isfinite(v) for v in ssl1.values())
    assert probe["probe_findings_defined"] == 5 and 0.0 <= probe["probe_auc_macro"] <= 1.0
    assert model.training  # evaluation restores the mode
