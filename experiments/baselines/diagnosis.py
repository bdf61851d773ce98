"""The diagnosis benchmark of the frozen-encoder design: every arm, per-site and external AUCs with CIs.

Arms (all the same linear head, :mod:`experiments.baselines.head_arms`, on the features of
:mod:`experiments.baselines.features`):

* ``local-only`` and ``local-only-dp-eps<E>``: each site alone, without DP and at each epsilon;
* ``centralized``: every site's training patients pooled, without DP (the reference only
  synthetic data allows);
* ``federated`` and ``federated-dp-eps<E>``: FedAvg over the sites, without DP and at each epsilon;
* ``floor-chest-densitometry-dp-eps<E>``: FedAvg under DP at the largest epsilon on the
  whole-chest densitometry alone, the floor every arm must beat.

Each arm is scored on every site's held-out patients and on an external hospital that no arm
trained on (another scanner profile; for a local-only arm, the external row is the best of the
sites' local models there, the stricter comparison for federation), with a 95% percentile bootstrap CI over patients
(:func:`client_site.downstream.scorecard.bootstrap`). The split, seeds and settings are fixed
before anything is scored; nothing is tuned on held-out or external patients.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from client_site.clinical_metrics import macro_auc, per_finding_auc, per_finding_roc
from client_site.downstream.scorecard import bootstrap
from experiments.baselines.features import PatientFeatures, PublicScaler, SiteFeatures, site_features
from experiments.baselines.head_arms import HeadTraining, TrainedHead, train_head
from experiments.baselines.report import Comparison, roc_records

logger = logging.getLogger(__name__)

EXTERNAL_PREFIX = "external: "
"""Site label of the external hospital's rows."""

MAIN_FEATURES = "densitometry+embedding"
FLOOR_FEATURES = "chest-densitometry"


@dataclass(frozen=True)
class DiagnosisBenchmarkConfig:
    """What the benchmark runs.

    Parameters
    ----------
    epsilons : tuple of float
        Target epsilons of the DP arms, per site over the whole arm. (default: 1, 4, 8)
    training : HeadTraining
        Rounds, steps, rate, clipping and delta of every arm.
    features : str
        Feature set of every arm but the floor. (default: densitometry + embedding)
    bootstrap_samples : int
        Resamples of each CI. (default: 1000)
    """

    epsilons: tuple[float, ...] = (1.0, 4.0, 8.0)
    training: HeadTraining = HeadTraining()
    features: str = MAIN_FEATURES
    bootstrap_samples: int = 1000


Scored = tuple[dict[str, object], list[dict[str, object]]]
"""One (arm, site) result: its comparison row and the ROC points of its findings."""


def score(head: TrainedHead, group: PatientFeatures, feature_set: str, *,
          samples: int) -> tuple[dict[str, float], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per-finding and macro AUC of ``head`` against the truth, with the macro-AUC's 95% CI, and
    the ROC curve of each finding those AUCs are the areas of."""
    logits = head.scores(group.columns(feature_set))

    def statistic(index: np.ndarray) -> dict[str, float]:
        per = per_finding_auc(group.truth[index], logits[index])
        return {"diag_auc_macro": macro_auc(per), **{f"diag_auc_{k}": v for k, v in per.items()}}

    cis = bootstrap(statistic, len(group), samples=samples)
    row = {name: ci.value for name, ci in cis.items()}
    row["diag_auc_macro_ci_low"] = cis["diag_auc_macro"].ci_low
    row["diag_auc_macro_ci_high"] = cis["diag_auc_macro"].ci_high
    return row, per_finding_roc(group.truth, logits)


class DiagnosisBenchmark:
    """All arms over the features of the training sites and of one external site."""

    def __init__(self, sites: Sequence[SiteFeatures], external: SiteFeatures | None,
                 config: DiagnosisBenchmarkConfig) -> None:
        self.sites, self.external, self.config = list(sites), external, config

    def _targets(self) -> list[tuple[str, PatientFeatures]]:
        targets = [(s.name, s.held_out) for s in self.sites]
        if self.external is not None:
            targets.append((EXTERNAL_PREFIX + self.external.name, self.external.held_out))
        return targets

    def _rows(self, arm: str, head: TrainedHead, feature_set: str,
              epsilon: Callable[[int], float]) -> list[Scored]:
        scored: list[Scored] = []
        for index, (name, group) in enumerate(self._targets()):
            spent = epsilon(index) if index < len(self.sites) else math.nan
            metrics, curves = score(head, group, feature_set, samples=self.config.bootstrap_samples)
            scored.append(({"baseline": arm, "site": name, "epsilon": spent, **metrics,
                            "held_out_patients": float(len(group))}, roc_records(arm, name, curves)))
        return scored

    def federated_arm(self, out: Comparison, name: str, *, epsilon: float | None, features: str,
                      pooled: bool = False) -> None:
        """Train the FedAvg head of arm ``name`` over the sites (``pooled``: the centralized
        model) under DP at ``epsilon`` or without, and add its rows and curves to ``out``."""
        trained = train_head([s.train for s in self.sites], features, self.config.training,
                             epsilon=epsilon, pooled=pooled)
        for row, curves in self._rows(name, trained, features,
                                      lambda i: math.nan if pooled or epsilon is None else trained.epsilon[i]):
            out.rows.append(row)
            out.roc_curves.extend(curves)

    def run(self, on_arm: Callable[[str], None] | None = None) -> Comparison:
        """Train every arm and score it everywhere."""
        c, t = self.config, self.config.training
        out = Comparison(rows=[], cross_site={}, settings={})
        rows, roc, cross = out.rows, out.roc_curves, out.cross_site
        nan = math.nan

        def arm(name: str, *, epsilon: float | None, features: str = c.features, pooled: bool = False) -> None:
            if on_arm:
                on_arm(name)
            self.federated_arm(out, name, epsilon=epsilon, features=features, pooled=pooled)

        def local_arm(name: str, epsilon: float | None) -> None:
            if on_arm:
                on_arm(name)
            external: list[Scored] = []
            for i, site in enumerate(self.sites):
                trained = train_head([site.train], c.features, t, epsilon=epsilon)
                for row, curves in self._rows(name, trained, c.features,
                                              lambda j: trained.epsilon[0] if j == i else nan):
                    if name == "local-only":
                        cross[(site.name, str(row["site"]))] = float(row["diag_auc_macro"])  # type: ignore[arg-type]
                    if row["site"] == site.name:
                        rows.append(row)
                        roc.extend(curves)
                    elif str(row["site"]).startswith(EXTERNAL_PREFIX):
                        external.append((row, curves))
            if external:
                best_row, best_curves = max(external, key=lambda s: float(s[0]["diag_auc_macro"]))  # type: ignore[arg-type]
                rows.append(best_row)
                roc.extend(best_curves)

        local_arm("local-only", None)
        for e in c.epsilons:
            local_arm(f"local-only-dp-eps{e:g}", e)
        arm("centralized", epsilon=None, pooled=True)
        arm("federated", epsilon=None)
        for e in c.epsilons:
            arm(f"federated-dp-eps{e:g}", epsilon=e)
        arm(f"floor-chest-densitometry-dp-eps{max(c.epsilons):g}", epsilon=max(c.epsilons),
            features=FLOOR_FEATURES)
        out.settings.update({
            "design": "frozen encoder; DP linear head on its scan embedding + chest and lung-zone "
                      "densitometry + lung-nodule blob block",
            "features": c.features, "sites": ", ".join(s.name for s in self.sites),
            "external site": self.external.name if self.external else "none",
            "training patients per site": ", ".join(str(len(s.train)) for s in self.sites),
            "held-out patients per site": ", ".join(str(len(s.held_out)) for s in self.sites),
            "rounds x full-batch steps": f"{t.rounds} x {t.local_steps}", "optimizer": f"SGD lr {t.lr}",
            "clip": t.max_grad_norm, "delta": t.delta,
            "noise multipliers": ", ".join(f"eps {e:g}: {t.noise_for(e):.2f}" for e in c.epsilons),
            "CI": f"95% percentile bootstrap over patients, {c.bootstrap_samples} resamples",
            "local-only external row": "the best of the sites' local models at the external site",
        })
        return out



def run_diagnosis_benchmark(
    workdir: Path, *, sites: int, patients: int, seed: int, preset: str, folder: str,
    config: DiagnosisBenchmarkConfig, public_patients: int = 60,
    init_state: dict[str, torch.Tensor] | None = None, on_arm: Callable[[str], None] | None = None,
    ssl_rounds: int = 0, matrix: int = 128,
) -> Comparison:
    """Generate (once) and ingest ``sites`` training hospitals plus one external hospital (the
    next scanner profile) and the public phantoms, compute the features and run every arm.

    The encoder is the consortium's starting point: ``init_state`` (MedMPT weights) or a
    seeded random initialisation, frozen throughout. With ``ssl_rounds``, the training sites
    also run that many rounds of federated DP SSL from it, and the linear probe of the
    embedding is scored before and after (:mod:`experiments.baselines.ssl_probe`). ``matrix`` is
    the in-plane matrix of the hospitals' generated CT slices; ``public_patients`` the phantoms'.
    """
    from client_site.model import MedMPT
    from experiments.demo import prepare_sites
    from experiments.public_init import public_phantoms, public_standardiser
    from federation.presets import get_preset

    site_dirs = prepare_sites(workdir, n_sites=sites + 1, patients=patients, seed=seed, preset=preset,
                              folder=folder, budgets=(max(config.epsilons) + 1.0,), allow_non_dp=True,
                              matrix=matrix)
    public_dir = public_phantoms(workdir, seed=seed, preset=preset, patients=public_patients)
    torch.manual_seed(seed)
    encoder = MedMPT(get_preset(preset).model)
    if init_state is not None:
        encoder.load_state_dict(init_state, strict=True)

    def benchmark() -> DiagnosisBenchmark:
        scaler = PublicScaler(public_standardiser(public_dir, encoder))
        training = [scaler.apply_site(site_features(d, encoder)) for d in site_dirs[:-1]]
        external = scaler.apply_site(site_features(site_dirs[-1], encoder, external=True))
        return DiagnosisBenchmark(training, external, config)

    bench = benchmark()
    comparison = bench.run(on_arm)
    if ssl_rounds:
        from experiments.baselines.ssl_probe import AFTER_SSL, INITIAL, federated_ssl, probe_arms

        probe_arms(bench, comparison, INITIAL, on_arm)
        state, settings = federated_ssl(workdir, site_dirs[:-1], encoder.state_dict(), rounds=ssl_rounds,
                                        seed=seed, preset=preset)
        encoder.load_state_dict(state, strict=True)
        probe_arms(benchmark(), comparison, AFTER_SSL, on_arm)
        comparison.settings.update(settings)
    return comparison
