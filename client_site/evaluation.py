"""Held-out evaluation at a site: SSL losses and a linear probe of the findings.

Both use a fixed study per patient (draw 0 of :class:`~client_site.datasets.PatientDataset`)
and fixed masks from a fixed seed, so numbers are comparable across rounds. They are computed
on private data: whatever leaves the site must go through the egress whitelist.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import torch

from client_site.datasets import PatientDataset
from client_site.findings import FINDINGS
from client_site.model import MedMPT
from client_site.ssl_masks import MaskingConfig, make_ssl_inputs

logger = logging.getLogger(__name__)


def fixed_batches(dataset: PatientDataset, batch_size: int) -> list[tuple[torch.Tensor, ...]]:
    """Draw-0 items of every patient, in order, stacked into batches of ``batch_size``."""
    out = []
    for start in range(0, len(dataset), batch_size):
        items = [dataset.get(i, draw=0) for i in range(start, min(start + batch_size, len(dataset)))]
        out.append(tuple(torch.stack(column) for column in zip(*items)))
    return out


class EvalMode:
    """Context manager: eval mode and no grad, then restore the training flag."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.was_training = model, model.training
        self.no_grad = torch.no_grad()

    def __enter__(self) -> None:
        self.model.eval()
        self.no_grad.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.no_grad.__exit__(*exc)
        self.model.train(self.was_training)


def evaluate_ssl(
    model: MedMPT, dataset: PatientDataset, *, seed: int = 0, batch_size: int = 8,
    masking: MaskingConfig | None = None,
) -> dict[str, float]:
    """Mean held-out SSL losses ``ssl_loss``, ``ssl_mim``, ``ssl_mlm``, ``ssl_gen``.

    Text losses average over patients whose study has a report (NaN if none has).
    """
    masking = masking or MaskingConfig()
    generator = torch.Generator().manual_seed(seed)
    sums = {"loss": 0.0, "mim": 0.0, "mlm": 0.0, "gen": 0.0}
    seen = with_report = 0
    with EvalMode(model):
        for volume, text_ids, has_report in fixed_batches(dataset, batch_size):
            inputs = make_ssl_inputs(volume, text_ids, has_report, model_cfg=model.cfg,
                                     masking=masking, generator=generator)
            _, parts = model(**inputs)
            b, n_rep = volume.shape[0], float(has_report.sum())
            for key, weight in (("loss", b), ("mim", b), ("mlm", n_rep), ("gen", n_rep)):
                sums[key] += float(parts[key]) * weight
            seen, with_report = seen + b, with_report + int(n_rep)
    nan = float("nan")
    return {
        "ssl_loss": sums["loss"] / seen if seen else nan,
        "ssl_mim": sums["mim"] / seen if seen else nan,
        "ssl_mlm": sums["mlm"] / with_report if with_report else nan,
        "ssl_gen": sums["gen"] / with_report if with_report else nan,
    }


def embed_scans(model: MedMPT, dataset: PatientDataset, *, batch_size: int = 8) -> np.ndarray:
    """Scan embeddings (N, dim) of each patient's draw-0 study."""
    chunks = []
    with EvalMode(model):
        for volume, _, _ in fixed_batches(dataset, batch_size):
            chunks.append(model.encode_scan(volume)[1].numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, model.cfg.dim), dtype=np.float32)


def probe_embeddings(
    train_emb: np.ndarray, test_emb: np.ndarray, train_labels: np.ndarray, test_labels: np.ndarray,
    *, findings: Sequence[str] = FINDINGS, c: float = 1.0, max_iter: int = 2000,
) -> dict[str, float]:
    """Per-finding AUC of a linear probe (standardised embeddings, balanced logistic regression).

    Returns ``probe_auc_<finding>`` (NaN when a finding has one class in either split),
    ``probe_auc_macro`` (mean of the defined ones, NaN if none) and ``probe_findings_defined``.
    """
    # scikit-learn costs seconds to import and only the probe needs it; Flower starts a fresh
    # ClientApp process per message, and training messages never get here.
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    expected = [(len(train_emb), len(findings)), (len(test_emb), len(findings))]
    if [train_labels.shape, test_labels.shape] != expected:
        raise ValueError(
            f"labels must be {expected[0]} and {expected[1]} (patients x findings), got "
            f"{train_labels.shape} and {test_labels.shape}"
        )
    scaler = StandardScaler().fit(train_emb)
    x_train, x_test = scaler.transform(train_emb), scaler.transform(test_emb)
    out: dict[str, float] = {}
    defined = []
    for j, name in enumerate(findings):
        y_train, y_test = train_labels[:, j].astype(int), test_labels[:, j].astype(int)
        if len(np.unique(y_train)) < 2 or len(np.unique(y_test)) < 2:
            out[f"probe_auc_{name}"] = float("nan")
            continue
        clf = LogisticRegression(C=c, class_weight="balanced", max_iter=max_iter)
        clf.fit(x_train, y_train)
        auc = float(roc_auc_score(y_test, clf.decision_function(x_test)))
        out[f"probe_auc_{name}"] = auc
        defined.append(auc)
    out["probe_auc_macro"] = float(np.mean(defined)) if defined else float("nan")
    out["probe_findings_defined"] = float(len(defined))
    return out


def probe_findings(
    model: MedMPT, train_ds: PatientDataset, test_ds: PatientDataset, train_labels: np.ndarray,
    test_labels: np.ndarray, *, batch_size: int = 8,
) -> dict[str, float]:
    """Linear probe of :data:`~client_site.findings.FINDINGS` on frozen scan embeddings.

    Parameters
    ----------
    train_labels, test_labels : np.ndarray
        ``(len(train_ds), len(FINDINGS))`` 0/1 labels of each patient's draw-0 study
        (``dataset.study_of(i, draw=0)``), supplied by the caller.
    """
    train_emb = embed_scans(model, train_ds, batch_size=batch_size)
    test_emb = embed_scans(model, test_ds, batch_size=batch_size)
    result = probe_embeddings(train_emb, test_emb, train_labels, test_labels)
    if not math.isnan(result["probe_auc_macro"]):
        logger.info("probe macro AUC %.3f over %d findings", result["probe_auc_macro"],
                    int(result["probe_findings_defined"]))
    return result
