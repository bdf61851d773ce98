"""Run the honest baselines on the same split, seeds and initial weights.

Arms (``ARMS``): each site alone (``local-only``, also evaluated at every other site for the
cross-site matrix), all training patients pooled (``centralized``, the reference that only
synthetic data allows), FedAvg without DP (``federated``) and FedAvg with patient-level DP at
each target epsilon (``federated-dp-eps<E>``).

Every arm drives the sites' own :class:`~client_site.site_runtime.SiteRuntime` (the code
``federation.client_app`` calls for each Flower message: same datasets, DP-SGD, ledger, egress
whitelist and held-out evaluation) in one process; FedAvg is Flower's weighted mean
(``flwr.server.strategy.aggregate.aggregate``). Only the message transport differs from
``fedmpt federate``. Each arm accounts in its own ledger under the experiment folder, so arms
do not draw on each other's budget and the sites' own ledgers are not touched.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from client_site.datasets import PooledPatientDataset
from client_site.downstream import DownstreamDataset, DownstreamObjective
from client_site.site_runtime import RoundRequest, SiteRuntime, StateDict
from client_site.tasks import FINETUNE, build_model
from client_site.tokenizer import ReportTokenizer
from client_site.training import TrainConfig, train_locally
from experiments.baselines.report import Comparison
from federation.presets import get_preset
from privacy.planning import noise_for_target

logger = logging.getLogger(__name__)

LOCAL, CENTRALIZED, FEDERATED = "local-only", "centralized", "federated"


@dataclass(frozen=True)
class ExperimentConfig:
    """What ``fedmpt experiment compare`` runs (defaults: its documented default size).

    Parameters
    ----------
    preset : str
        Model preset of every arm. (default: ``"demo"``)
    rounds, local_steps : int
        Federated rounds and optimizer steps per site and round; local-only models train
        ``rounds * local_steps`` steps, the centralized one ``rounds * local_steps * n_sites``.
        (default: 3, 30: the diagnosis and medication heads need about a hundred steps to
        leave the base rates)
    batch_size : int
        (Expected) batch of patients. (default: 8)
    lr, max_grad_norm : float
        AdamW rate and DP per-patient clipping norm. (default: 3e-3, 1.0)
    epsilons : tuple of float
        Target epsilons of the DP arms (over the whole arm). (default: 1, 8)
    delta : float
        DP delta. (default: 1e-5)
    seed : int
        Seeds the initial weights, non-private batches and masks of every arm; the DP sampling
        and noise come from each site (privacy.randomness). (default: 0)
    """

    preset: str = "demo"
    rounds: int = 3
    local_steps: int = 30
    batch_size: int = 8
    lr: float = 3e-3
    max_grad_norm: float = 1.0
    epsilons: tuple[float, ...] = (1.0, 8.0)
    delta: float = 1e-5
    seed: int = 0


def _fedavg(results: Sequence[tuple[StateDict, int]]) -> StateDict:
    """FedAvg: the num-examples weighted mean of the sites' weights (Flower's ``aggregate``)."""
    from flwr.server.strategy.aggregate import aggregate

    keys = list(results[0][0])
    mean = aggregate([([state[k].numpy() for k in keys], n) for state, n in results])
    return {k: torch.from_numpy(np.asarray(a)).to(results[0][0][k].dtype) for k, a in zip(keys, mean, strict=True)}


def _new_run_dir(out_dir: Path) -> Path:
    """A new folder under ``out_dir`` whose name starts with the current UTC time."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path(tempfile.mkdtemp(prefix=f"{stamp}-", dir=out_dir))


class Experiment:
    """The arms of one comparison over ingested site directories.

    Parameters
    ----------
    site_dirs : sequence of Path
        Ingested sites (``site.toml`` with ``allow_non_dp = true``: baselines without DP).
    out_dir : Path
        Experiments folder: this comparison keeps its arms' privacy ledgers in a new subfolder
        named after its start time (:attr:`run_dir`), so a later comparison starts from fresh
        ledgers and the earlier ones are kept.
    config : ExperimentConfig
        Sizes, rounds and seeds.
    init_state : dict, optional
        Pretrained weights every arm starts from (a MedMPT or ClinicalMedMPT state dict).
    """

    def __init__(self, site_dirs: Sequence[Path], out_dir: Path, config: ExperimentConfig,
                 init_state: StateDict | None = None) -> None:
        self.site_dirs, self.config = list(site_dirs), config
        self.run_dir = _new_run_dir(Path(out_dir))
        self.preset = get_preset(config.preset)
        torch.manual_seed(config.seed)
        model = build_model(FINETUNE, self.preset.model, init_state=init_state)
        self.initial: StateDict = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.sites = [SiteRuntime(d) for d in self.site_dirs]  # split and cache index, read once
        self.names = [site.name for site in self.sites]
        self._runtimes: dict[tuple[int, str], SiteRuntime] = {}

    def _runtime(self, index: int, arm: str) -> SiteRuntime:
        """Site ``index`` accounting in ``arm``'s own ledger (one runtime per site and arm)."""
        key = (index, arm)
        if key not in self._runtimes:
            ledger = self.run_dir / "ledgers" / arm / f"{self.names[index]}.jsonl"
            self._runtimes[key] = SiteRuntime(self.site_dirs[index], ledger_path=ledger)
        return self._runtimes[key]

    def _request(self, arm: str, round: int, *, dp: bool, noise: float = 0.0,
                 steps: int | None = None) -> RoundRequest:
        c = self.config
        return RoundRequest(
            run_id=f"experiment-{arm}", round=round, model=self.preset.model,
            input_shape=tuple(self.preset.preprocess.shape), task=FINETUNE,
            train=TrainConfig(local_steps=steps or c.local_steps, expected_batch_size=c.batch_size,
                              lr=c.lr, max_grad_norm=c.max_grad_norm, dp=dp,
                              noise_multiplier=noise if dp else 1.0, seed=c.seed),
        )

    def _evaluate(self, arm: str, state: StateDict, at: Sequence[int]) -> dict[int, dict[str, float]]:
        request = self._request(arm, self.config.rounds, dp=False)
        return {j: self._runtime(j, arm).evaluate(state, request) for j in at}

    # ------------------------------------------------------------------ arms
    def federated(self, arm: str, *, members: Sequence[int], noise: float | None,
                  progress: tqdm) -> tuple[StateDict, dict[int, float]]:
        """FedAvg over ``members`` (one member: a local-only model); returns weights and each
        member's cumulative epsilon (NaN without DP)."""
        state, epsilon = self.initial, {i: math.nan for i in members}
        for rnd in range(1, self.config.rounds + 1):
            request = self._request(arm, rnd, dp=noise is not None, noise=noise or 0.0)
            results = []
            for i in members:
                new, metrics = self._runtime(i, arm).train_round(state, request)
                results.append((new, int(metrics["num-examples"])))
                if noise is not None:
                    epsilon[i] = float(metrics["epsilon"])
            state = _fedavg(results)
            progress.update(1)
        return state, epsilon

    def centralized(self, progress: tqdm) -> StateDict:
        """All sites' training patients pooled, as many steps as the whole federation takes."""
        c = self.config
        parts = [DownstreamDataset(site.layout.cache_dir, site.train_keys, ReportTokenizer(),
                                   max_len=self.preset.model.text_max_len, seed=c.seed)
                 for site in self.sites]
        model = build_model(FINETUNE, self.preset.model, init_state=self.initial)
        steps = c.rounds * c.local_steps * len(self.site_dirs)
        cfg = replace(self._request(CENTRALIZED, 1, dp=False).train, local_steps=steps)
        result = train_locally(model, PooledPatientDataset(parts), cfg, DownstreamObjective())
        progress.update(c.rounds)
        return result.state_dict

    def dp_noise(self, epsilon: float) -> float:
        """Noise multiplier that keeps every site within ``epsilon`` over the whole arm.

        Planned at the largest sampling rate (the smallest site), so larger sites spend less.
        """
        c = self.config
        smallest = min(len(site.train_keys) for site in self.sites)
        sigma, _ = noise_for_target(target_epsilon=epsilon, delta=c.delta,
                                    sample_rate=min(c.batch_size / smallest, 1.0),
                                    rounds=c.rounds, local_steps=c.local_steps)
        return sigma

    def run(self, on_arm: Callable[[str], None] | None = None) -> Comparison:
        """Run every arm and evaluate it at every site's held-out patients."""
        c, n = self.config, len(self.site_dirs)
        rows: list[dict[str, object]] = []
        cross: dict[tuple[str, str], float] = {}
        everyone = list(range(n))
        total = c.rounds * (n + 2 + len(c.epsilons))
        with tqdm(total=total, desc="experiment rounds", unit="round") as progress:
            for i in everyone:
                state, _ = self.federated(LOCAL, members=[i], noise=None, progress=progress)
                # A site evaluates one model once per (run, round): each local model is its own run.
                for j, metrics in self._evaluate(f"{LOCAL}-{self.names[i]}", state, everyone).items():
                    cross[(self.names[i], self.names[j])] = metrics.get("diag_auc_macro", math.nan)
                    if i == j:
                        rows.append(self._row(LOCAL, j, metrics, math.nan))
            noises = {e: self.dp_noise(e) for e in c.epsilons}
            arms: list[tuple[str, float | None]] = [(CENTRALIZED, None), (FEDERATED, None)]
            arms += [(f"federated-dp-eps{e:g}", noise) for e, noise in noises.items()]
            for arm, noise in arms:
                if on_arm:
                    on_arm(arm)
                if arm == CENTRALIZED:
                    state, spent = self.centralized(progress), {j: math.nan for j in everyone}
                else:
                    state, spent = self.federated(arm, members=everyone, noise=noise, progress=progress)
                for j, metrics in self._evaluate(arm, state, everyone).items():
                    rows.append(self._row(arm, j, metrics, spent[j]))
        settings = {"preset": c.preset, "sites": ", ".join(self.names), "rounds": c.rounds,
                    "local steps per round": c.local_steps, "batch": c.batch_size, "lr": c.lr,
                    "delta": c.delta, "seed": c.seed,
                    "noise multipliers": ", ".join(f"eps {e:g}: {sigma:.3f}" for e, sigma in noises.items())}
        return Comparison(rows=rows, cross_site=cross, settings=settings)

    def _row(self, arm: str, site: int, metrics: dict[str, float], epsilon: float) -> dict[str, object]:
        return {"baseline": arm, "site": self.names[site], "epsilon": epsilon,
                **{k: v for k, v in metrics.items() if k != "num-examples" and not k.startswith("qa_")},
                "held_out_patients": metrics.get("num-examples", math.nan)}
