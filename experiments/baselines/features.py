"""Per-patient features of the frozen-encoder design, computed once per site for every arm.

With the encoder frozen, what each arm trains privately is a linear head on fixed features:
the frozen encoder's scan embedding and the parameter-free densitometry, as the fine-tuned model
reads them (:func:`~client_site.downstream.heads.encode_image_features`). They are computed once per site
(one study per patient: its draw-0 study, as the held-out evaluation draws it), so the arms
differ only in how the head is trained.

Training targets are the weak labels read from each study's own report (what a site has);
evaluation targets are the synthetic ground truth (``truth/labels.csv``), read only to score.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from client_site.datasets import PatientDataset
from client_site.downstream.data import diagnosis_targets
from client_site.downstream.densitometry import NUM_DENSITY_FEATURES
from client_site.downstream.feature_head import FeatureStandardiser
from client_site.downstream.heads import NUM_FEATURES, encode_image_features
from client_site.model import MedMPT
from client_site.pseudonym import load_or_create_salt
from client_site.site_runtime import SiteRuntime
from client_site.tokenizer import ReportTokenizer
from client_site.truth import load_study_labels

logger = logging.getLogger(__name__)

FEATURE_SETS = ("densitometry+embedding", "densitometry", "chest-densitometry", "embedding")
"""Columns an arm's head reads: everything the model's diagnosis head reads, the parameter-free
densitometry alone, the whole-chest histograms alone (the floor), and the encoder's scan
embedding alone (the linear probe of the encoder)."""


@dataclass(frozen=True)
class PatientFeatures:
    """Features, weak labels and truth of one group of patients.

    Attributes
    ----------
    embedding : np.ndarray
        ``(N, dim)`` scan embeddings of the frozen encoder.
    density : np.ndarray
        ``(N, NUM_FEATURES)`` chest, lung-zone densitometry, then the lung-nodule blob block.
    weak_labels, truth : np.ndarray
        ``(N, len(FINDINGS))`` 0/1 findings of the report (training target) and the truth.
    has_report : np.ndarray
        ``(N,)`` 1 where the study has a report (the weak labels exist).
    """

    embedding: np.ndarray
    density: np.ndarray
    weak_labels: np.ndarray
    truth: np.ndarray
    has_report: np.ndarray

    def columns(self, feature_set: str) -> np.ndarray:
        """The feature matrix an arm reads (one of :data:`FEATURE_SETS`)."""
        if feature_set == "densitometry+embedding":
            return np.concatenate([self.density, self.embedding], axis=1)
        if feature_set == "densitometry":
            return self.density
        if feature_set == "chest-densitometry":
            return self.density[:, :NUM_DENSITY_FEATURES]
        if feature_set == "embedding":
            return self.embedding
        raise ValueError(f"feature set must be one of {FEATURE_SETS}, got {feature_set!r}")

    def __len__(self) -> int:
        return len(self.truth)


@dataclass(frozen=True)
class PublicScaler:
    """Standardisation of every feature column with statistics of public data only (the model's
    own :class:`~client_site.downstream.feature_head.FeatureStandardiser`, applied to fixed features).

    A linear head trained by a few SGD steps needs centred, comparable features; the mean and
    spread come from phantoms no site holds (another generator seed), so no site statistic is
    released and nothing is fitted on held-out or external patients.
    """

    standardiser: FeatureStandardiser

    @classmethod
    def fit(cls, public: PatientFeatures) -> PublicScaler:
        """Column means and standard deviations of the public patients' features (all columns)."""
        full = np.concatenate([public.density, public.embedding], axis=1)
        return cls(FeatureStandardiser(full.shape[1]).fit(full))

    @property
    def mean(self) -> np.ndarray:
        """Column means (densitometry, then embedding)."""
        return self.standardiser.mean.numpy()

    @property
    def scale(self) -> np.ndarray:
        """Column standard deviations (densitometry, then embedding)."""
        return self.standardiser.scale.numpy()

    def apply(self, group: PatientFeatures) -> PatientFeatures:
        """``group`` with both feature blocks standardised."""
        width = group.density.shape[1]
        with torch.no_grad():
            full = self.standardiser(torch.as_tensor(np.concatenate([group.density, group.embedding], axis=1)))
        full_np = full.numpy().astype(np.float32)
        return replace(group, density=full_np[:, :width], embedding=full_np[:, width:])

    def apply_site(self, site: SiteFeatures) -> SiteFeatures:
        """Both groups of ``site`` standardised."""
        return SiteFeatures(site.name, self.apply(site.train), self.apply(site.held_out))


@dataclass(frozen=True)
class SiteFeatures:
    """A site's training and held-out patients (an external site: all patients held out)."""

    name: str
    train: PatientFeatures
    held_out: PatientFeatures


def _features(site: SiteRuntime, keys: Sequence[str], encoder: MedMPT, batch_size: int) -> PatientFeatures:
    dataset = PatientDataset(site.layout.cache_dir, list(keys), ReportTokenizer(),
                             max_len=encoder.cfg.text_max_len, seed=0)
    labels = load_study_labels(site.layout.labels_path, load_or_create_salt(site.layout.root))
    records = [dataset.study_of(i, draw=0) for i in range(len(dataset))]
    missing = [r.study_key for r in records if r.study_key not in labels]
    if missing:
        raise ValueError(f"{len(missing)} studies of {site.name} have no row in {site.layout.labels_path}")
    encoder.eval()
    features = np.concatenate([
        encode_image_features(encoder, torch.stack([dataset.get(i, draw=0)[0] for i in
                                                    range(start, min(start + batch_size, len(dataset)))]).float()).numpy()
        for start in range(0, len(dataset), batch_size)])
    return PatientFeatures(
        embedding=features[:, NUM_FEATURES:], density=features[:, :NUM_FEATURES],
        weak_labels=np.stack([diagnosis_targets(r).numpy() for r in records]),
        truth=np.stack([labels[r.study_key] for r in records]).astype(np.float32),
        has_report=np.array([1.0 if r.report else 0.0 for r in records], dtype=np.float32),
    )


def site_features(site_dir: Path, encoder: MedMPT, *, external: bool = False,
                  batch_size: int = 16) -> SiteFeatures:
    """Features of a site's training and held-out patients (its own split), or, for an
    ``external`` site, of all its patients as held out (no arm trains on it)."""
    site = SiteRuntime(site_dir)
    if external:
        everyone = sorted([*site.train_keys, *site.held_out_keys])
        held = _features(site, everyone, encoder, batch_size)
        empty = PatientFeatures(*(np.zeros((0, *a.shape[1:]), dtype=np.float32) for a in
                                  (held.embedding, held.density, held.weak_labels, held.truth, held.has_report)))
        return SiteFeatures(site.name, empty, held)
    logger.info("features of %s: %d training, %d held-out patients", site.name,
                len(site.train_keys), len(site.held_out_keys))
    return SiteFeatures(site.name, _features(site, site.train_keys, encoder, batch_size),
                        _features(site, site.held_out_keys, encoder, batch_size))

