"""What a site does when the aggregator asks it to train or evaluate the global model.

Independent of Flower: :mod:`federation.client_app` turns messages into calls of
:class:`SiteRuntime` and its results back into messages.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from client_site.clinical_metrics import load_interactions
from client_site.datasets import PatientDataset, load_cache_index, split_patients
from client_site.downstream import (
    DownstreamDataset,
    DownstreamObjective,
    DrugGraph,
    evaluate_downstream,
    site_pointing_game,
)
from client_site.downstream.calibration import calibrate
from client_site.downstream.heads import HeadsObjective, head_dataset
from client_site.egress import release_metrics
from client_site.evaluation import evaluate_ssl, probe_findings
from client_site.evaluation_releases import claim_evaluation, state_digest
from client_site.failures import Reason, SiteRefusal
from client_site.ingestion import load_qa_metrics
from client_site.layout import SiteLayout
from client_site.model import MedMPT, ModelConfig
from client_site.pseudonym import load_or_create_salt
from client_site.site_config import FINE_TUNING, SSL, load_site_config
from client_site.tasks import FINETUNE, PRETRAIN, build_model
from client_site.tokenizer import ReportTokenizer
from client_site.training import LocalTrainResult, TrainConfig, train_locally
from client_site.truth import load_study_labels
from privacy.accountant import PrivacyAccountant
from privacy.errors import BudgetExceededError, DeltaTooLargeError
from privacy.ledger import PrivacyLedger
from privacy.randomness import DPRandomness, fresh_randomness, seeded_randomness

logger = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class RoundRequest:
    """A train or evaluate request from the aggregator, as the site understands it.

    ``task`` is ``"pretrain"`` (SSL, :class:`~client_site.model.MedMPT`) or ``"finetune"``
    (downstream tasks, :class:`~client_site.downstream.model.ClinicalMedMPT`).
    """

    run_id: str
    round: int
    model: ModelConfig
    input_shape: tuple[int, int, int]
    train: TrainConfig
    task: str = PRETRAIN


def _round_seed(seed: int, round: int) -> int:
    return int(np.random.SeedSequence([seed, round]).generate_state(1)[0])


class SiteRuntime:
    """One hospital's training and evaluation over its own cache.

    Parameters
    ----------
    site_dir : Path
        The site directory (docs/contracts.md section 1), ingested beforehand.
    ledger_path : Path, optional
        Privacy ledger to account in. (default: the site's own ``privacy/ledger.jsonl``; an
        experiment on synthetic data passes one ledger per arm so that arms do not share a budget)
    """

    def __init__(self, site_dir: Path, *, ledger_path: Path | None = None) -> None:
        self.layout = SiteLayout(Path(site_dir))
        self.config = load_site_config(site_dir)
        self.ledger_path = ledger_path or self.layout.ledger_path
        index_path = self.layout.cache_dir / "index.json"
        self._preprocess = json.loads(index_path.read_text(encoding="utf-8")).get("preprocess", {}) \
            if index_path.exists() else {}
        patients = sorted({s.patient_key for s in load_cache_index(self.layout.cache_dir)})
        if not patients:
            raise ValueError(f"{self.layout.cache_dir} holds no accepted study; see why in "
                             f"{self.layout.ingest_report_path}")
        self.train_keys, self.held_out_keys = split_patients(patients)

    @property
    def name(self) -> str:
        """The site's name, from its own config."""
        return self.config.name

    def _model(self, request: RoundRequest, state: StateDict) -> nn.Module:
        cached = tuple(self._preprocess.get("shape", ()))
        if cached != request.input_shape:
            raise SiteRefusal(
                Reason.CACHE_MISMATCH, f"site cache was ingested to shape {cached} but the run needs {request.input_shape}; "
                f"re-run `fedmpt ingest` with the run's preset"
            )
        model = build_model(request.task, request.model)
        model.load_state_dict(state, strict=True)
        return model

    def _dataset(self, keys: list[str], model: ModelConfig, seed: int, task: str = PRETRAIN) -> PatientDataset:
        kind = DownstreamDataset if task == FINETUNE else PatientDataset
        return kind(self.layout.cache_dir, keys, ReportTokenizer(), max_len=model.text_max_len, seed=seed)

    def train_round(self, state: StateDict, request: RoundRequest) -> tuple[StateDict, dict[str, float]]:
        """Train the global model locally; under DP, only within the site's budget."""
        model = self._model(request, state)
        seed = _round_seed(request.train.seed, request.round)
        dataset = self._dataset(self.train_keys, request.model, seed, request.task)
        cfg = replace(request.train, seed=seed)
        budget = self.config.budget
        ledger = PrivacyLedger(self.ledger_path, mechanism=self.config.accountant)
        reservation = None
        stage = FINE_TUNING if request.task == FINETUNE else SSL
        if cfg.dp:
            try:
                budget.check_patients(len(dataset), allow_large_delta=self.config.allow_large_delta)
            except DeltaTooLargeError as e:
                raise SiteRefusal(Reason.DELTA_TOO_LARGE, f"{self.name}: {e}") from e
            rate = min(cfg.expected_batch_size / len(dataset), 1.0)
            self._check_stage_share(ledger, stage, cfg.noise_multiplier, rate, cfg.local_steps, request)
            try:
                reservation = ledger.reserve(
                    run_id=request.run_id, round=request.round, budget=budget,
                    noise_multiplier=cfg.noise_multiplier, sample_rate=rate,
                    steps=cfg.local_steps, stage=stage,
                )
            except BudgetExceededError as e:
                raise SiteRefusal(Reason.BUDGET, f"{self.name}: {e}") from e
        elif not self.config.allow_non_dp:
            raise SiteRefusal(Reason.NON_DP, f"{self.name} refuses training without DP (site.toml: allow_non_dp = false)")
        result = self._train(model, dataset, cfg, request)
        if reservation is not None:
            planned = [(reservation.noise_multiplier, reservation.sample_rate, reservation.steps)]
            if result.accountant_history != planned:
                raise RuntimeError(
                    f"DP training ran {result.accountant_history} but the ledger reserved {planned}"
                )
            ledger.complete(reservation)
        # No training loss leaves the site: it is computed on the training patients without noise.
        metrics = {
            "num-examples": result.num_examples,
            "steps": result.steps,
            "sample_rate": result.sample_rate,
            "noise_multiplier": cfg.noise_multiplier if cfg.dp else 0.0,
            "epsilon": ledger.epsilon(delta=budget.delta),
            "delta": budget.delta,
            "epsilon_budget": budget.epsilon,
            **self._stage_metrics(ledger),
        }
        logger.info("%s round %d: loss %.3f (kept at the site), %.1f s, epsilon %.3f / %g", self.name,
                    request.round, result.metrics["loss"], result.metrics["seconds"], metrics["epsilon"],
                    budget.epsilon)
        return result.state_dict, release_metrics("train", metrics)

    def _train(self, model: nn.Module, dataset: PatientDataset, cfg: TrainConfig,
               request: RoundRequest) -> LocalTrainResult:
        """Train ``model`` in place on ``dataset``. Fine-tuning with a frozen backbone trains the
        heads alone on image features computed once for the round (one study per patient); the
        privacy unit, sampling and accounting are those of ``dataset`` either way."""
        randomness = self._dp_randomness(request)
        if request.task != FINETUNE:
            return train_locally(model, dataset, cfg, randomness=randomness)
        if not model.heads.backbone_frozen:  # type: ignore[union-attr]
            return train_locally(model, dataset, cfg, DownstreamObjective(), randomness=randomness)
        heads = model.clinical_heads  # type: ignore[union-attr]
        result = train_locally(heads, head_dataset(model.backbone, dataset), cfg, HeadsObjective(),  # type: ignore[arg-type]
                               randomness=randomness)
        return replace(result, state_dict={k: v.detach().clone() for k, v in model.state_dict().items()})

    def _dp_randomness(self, request: RoundRequest) -> DPRandomness:
        """Fresh generators for this release, unless the site's own site.toml sets a test seed."""
        seed = self.config.dp_test_seed
        if seed is None:
            return fresh_randomness()
        logger.warning("%s: DP sampling and noise are reproducible ([testing] dp_seed in site.toml); "
                       "for tests only, never with patient data", self.name)
        return seeded_randomness(seed, run_id=request.run_id, round=request.round)

    def _check_stage_share(self, ledger: PrivacyLedger, stage: str, sigma: float, rate: float,
                           steps: int, request: RoundRequest) -> None:
        """Refuse a segment that would take ``stage`` past its share of the budget (site.toml
        ``ssl_share``), the stage's segments priced on their own. Without a split only the
        ledger's check of the whole budget applies."""
        if self.config.ssl_share is None:
            return
        delta = self.config.budget.delta
        after = PrivacyAccountant(mechanism=self.config.accountant, history=ledger.stage_history(stage)) \
            .epsilon_if(noise_multiplier=sigma, sample_rate=rate, steps=steps, delta=delta)
        cap = self.config.stage_epsilon(stage)
        if after > cap:
            raise SiteRefusal(Reason.BUDGET,
                f"{self.name}: round {request.round} of run {request.run_id} would raise the {stage} "
                f"stage's epsilon to {after:.3f} > its share {cap:.3f} of the budget "
                f"(site.toml: ssl_share = {self.config.ssl_share}); refused before training")

    def _stage_metrics(self, ledger: PrivacyLedger) -> dict[str, float]:
        """Each stage's epsilon (its own segments; 0 before it trained) and its cap."""
        spent = ledger.stage_epsilons(delta=self.config.budget.delta)
        metrics = {}
        for stage in (SSL, FINE_TUNING):
            key = f"epsilon_{stage.replace('-', '_')}"
            metrics[key] = spent.get(stage, 0.0)
            metrics[f"{key}_cap"] = self.config.stage_epsilon(stage)
        return metrics

    def evaluate(self, state: StateDict, request: RoundRequest) -> dict[str, float]:
        """SSL losses on held-out patients, a linear diagnosis probe and the site's data-QA statistics.

        For ``task == "finetune"``, the downstream metrics of
        :func:`~client_site.downstream.evaluate.evaluate_downstream` replace the SSL losses and
        the probe.

        Aggregate numbers only, rounded (:func:`client_site.egress.release_metrics`): the QA
        statistics are those of ``cache/qa.json`` (``fedmpt ingest --qa``), small counts already
        suppressed; a site ingested without ``--qa`` sends none. At most one evaluation per
        model and per (run, round) (:mod:`client_site.evaluation_releases`).
        """
        model = self._model(request, state)
        claim_evaluation(self.ledger_path.with_name(f"{self.ledger_path.stem}.evaluations.jsonl"),
                         run_id=request.run_id, round=request.round, digest=state_digest(state))
        held_out = self._dataset(self.held_out_keys, request.model, seed=0, task=request.task)
        if len(held_out) == 0:
            raise SiteRefusal(Reason.TOO_FEW_PATIENTS, f"{self.name} has too few patients to hold any out for validation")
        if request.task == FINETUNE:
            return release_metrics("evaluate", {"num-examples": float(len(held_out)),
                                                **self._downstream(model, held_out, request),
                                                **self._qa_metrics()})
        ssl = evaluate_ssl(model, held_out, seed=request.train.seed)
        metrics: dict[str, float] = {
            "num-examples": float(len(held_out)),
            "val_loss": ssl["ssl_loss"],
            "val_mim_loss": ssl["ssl_mim"],
            "val_mlm_loss": ssl["ssl_mlm"],
            "val_caption_loss": ssl["ssl_gen"],
        }
        if self.layout.labels_path.exists():
            metrics.update(self._probe(model, request, held_out))
        else:
            logger.warning("%s has no %s: no diagnosis probe", self.name, self.layout.labels_path)
        metrics.update(self._qa_metrics())
        return release_metrics("evaluate", metrics)

    def _qa_metrics(self) -> dict[str, float]:
        try:
            return load_qa_metrics(self.layout.cache_dir)
        except FileNotFoundError:
            logger.info("%s was ingested without --qa: it shares no data-quality statistics", self.name)
            return {}

    def _probe(self, model: MedMPT, request: RoundRequest, held_out: PatientDataset) -> dict[str, float]:
        labels = load_study_labels(self.layout.labels_path, load_or_create_salt(self.layout.root))
        train = self._dataset(self.train_keys, request.model, seed=0)

        def labels_of(dataset: PatientDataset) -> np.ndarray:
            keys = [dataset.study_of(i, draw=0).study_key for i in range(len(dataset))]
            unknown = [k for k in keys if k not in labels]
            if unknown:
                raise ValueError(f"{len(unknown)} studies have no row in {self.layout.labels_path}")
            return np.stack([labels[k] for k in keys])

        return probe_findings(model, train, held_out, labels_of(train), labels_of(held_out))

    def _downstream(self, model: nn.Module, held_out: PatientDataset, request: RoundRequest) -> dict[str, float]:
        """Downstream metrics of a fine-tuned model on the held-out patients (truth labels for
        the diagnosis AUC and lesion masks for the pointing game when the site has them, the
        site's own interaction table if present), at thresholds calibrated on the site's
        training patients."""
        labels = None
        if self.layout.labels_path.exists():
            labels = load_study_labels(self.layout.labels_path, load_or_create_salt(self.layout.root))
        else:
            logger.warning("%s has no %s: no diagnosis AUC", self.name, self.layout.labels_path)
        path = self.layout.interactions_path
        interactions = load_interactions(path) if path.exists() else DrugGraph.consortium().interactions
        calibration = calibrate(model, self._dataset(self.train_keys, request.model, seed=0,  # type: ignore[arg-type]
                                                     task=FINETUNE))
        metrics = evaluate_downstream(model, held_out, labels, interactions,  # type: ignore[arg-type]
                                      calibration=calibration)
        studies = {s.study_key for i in range(len(held_out)) for s in held_out.studies_of(i)}
        metrics["pointing_game"] = site_pointing_game(model, self.layout.root, studies).score
        return metrics

