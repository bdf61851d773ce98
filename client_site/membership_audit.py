"""Membership-inference audit of a released global model, run by the site on its own patients.

Members are the patients of the site's train split (the only ones any training round used),
non-members its held-out patients (:func:`client_site.datasets.split_patients`). The site
computes each patient's SSL loss under the released model and under a reference model (the
run's public initial model) with fixed masks, runs the attacks of :mod:`privacy.audit` and
releases only :class:`SiteAudit`: AUCs, group sizes and the epsilon its ledger recorded.
Per-patient losses never leave this module.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from client_site.datasets import PatientDataset, load_cache_index, split_patients
from client_site.layout import SiteLayout
from client_site.model import MedMPT, ModelConfig
from client_site.site_config import load_site_config
from client_site.ssl_masks import MaskingConfig, make_ssl_inputs
from client_site.tokenizer import ReportTokenizer
from privacy.accountant import PrivacyAccountant
from privacy.audit import MembershipResult
from privacy.ledger import PrivacyLedger

logger = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class SiteAudit:
    """What a site releases about a membership-inference audit (aggregates only).

    Attributes
    ----------
    site : str
        Site name from its own ``site.toml``.
    auc, auc_calibrated : float
        AUC of the loss attack and of the reference-calibrated attack.
    auc_untrained : float
        AUC of the loss attack on the reference model (no patient seen): the split's own bias.
    auc_null_std : float
        Standard deviation of the AUC of a useless attack at these group sizes.
    members, non_members : int
        Train-split and held-out patients.
    dp : bool
        Whether the run trained under DP-SGD.
    epsilon : float or None
        Epsilon the site's ledger recorded for this run's rounds, at ``delta``
        (None without DP: no guarantee).
    epsilon_cumulative : float
        Epsilon of the whole ledger (every run) at ``delta``.
    delta : float
        The site's delta.
    """

    site: str
    auc: float
    auc_calibrated: float
    auc_untrained: float
    auc_null_std: float
    members: int
    non_members: int
    dp: bool
    epsilon: float | None
    epsilon_cumulative: float
    delta: float

    def release(self) -> dict[str, object]:
        """The JSON-safe record that may leave the site (everything but the name)."""
        record = asdict(self)
        record.pop("site")
        return record


def per_patient_losses(
    models: list[MedMPT], dataset: PatientDataset, *, seed: int, draws: int = 4,
    batch_size: int = 8, masking: MaskingConfig | None = None,
) -> list[np.ndarray]:
    """Mean SSL loss of every patient under each model, shape (N,) per model.

    Each of the ``draws`` passes uses draw ``k`` of every patient (a fixed study, see
    :meth:`PatientDataset.get`) and masks from a generator seeded by ``(seed, k)``; all models
    see exactly the same inputs, so their losses are comparable patient by patient.
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    masking = masking or MaskingConfig()
    cfg = models[0].cfg
    totals = [np.zeros(len(dataset), dtype=np.float64) for _ in models]
    flags = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        with torch.no_grad():
            for k in range(draws):
                generator = torch.Generator().manual_seed(
                    int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
                )
                for start in range(0, len(dataset), batch_size):
                    index = range(start, min(start + batch_size, len(dataset)))
                    volume, ids, has = (torch.stack(c) for c in zip(*(dataset.get(i, draw=k) for i in index)))
                    inputs = make_ssl_inputs(volume, ids, has, model_cfg=cfg, masking=masking,
                                             generator=generator)
                    for total, model in zip(totals, models, strict=True):
                        total[start:start + len(index)] += model(**inputs)[0].double().numpy()
    finally:
        for m, flag in zip(models, flags, strict=True):
            m.train(flag)
    return [total / draws for total in totals]


def _runs_epsilon(ledger: PrivacyLedger, run_ids: Sequence[str], delta: float) -> float:
    history = [
        (e["noise_multiplier"], e["sample_rate"], e["steps"])
        for e in ledger.entries if e["event"] == "segment_started" and e["run_id"] in run_ids
    ]
    return PrivacyAccountant(mechanism=ledger.mechanism, history=history).get_epsilon(delta=delta)


def audit_site(
    site_dir: Path, *, model_cfg: ModelConfig, released: StateDict, reference: StateDict,
    run_ids: Sequence[str], dp: bool, seed: int = 0, draws: int = 4, batch_size: int = 8,
) -> SiteAudit:
    """Attack the released model with this site's members and held-out patients.

    Parameters
    ----------
    site_dir : Path
        The site directory, ingested to the run's preset.
    model_cfg : ModelConfig
        The run's model configuration.
    released, reference : dict of str to Tensor
        State dicts of the released global model and of the reference model (not trained on
        any patient, e.g. the run's seeded initial model).
    run_ids : sequence of str
        Runs whose training the released model carries (a fine-tuning run and the
        pretraining it started from): their ledger entries together give the epsilon.
    dp : bool
        Whether the run trained under DP-SGD.
    seed : int
        Seed of the fixed masks. (default: 0)
    draws : int
        Mask draws averaged per patient. (default: 4)
    """
    layout = SiteLayout(Path(site_dir))
    config = load_site_config(site_dir)
    patients = sorted({s.patient_key for s in load_cache_index(layout.cache_dir)})
    train_keys, held_out_keys = split_patients(patients)
    if not held_out_keys:
        raise ValueError(f"{config.name} holds out no patient: a membership audit needs non-members")
    target, ref = MedMPT(model_cfg), MedMPT(model_cfg)
    target.load_state_dict(released, strict=True)
    ref.load_state_dict(reference, strict=True)
    groups = []
    for keys in (train_keys, held_out_keys):
        dataset = PatientDataset(layout.cache_dir, keys, ReportTokenizer(), max_len=model_cfg.text_max_len,
                                 seed=seed, cache_size=0)
        groups.append(per_patient_losses([target, ref], dataset, seed=seed, draws=draws,
                                         batch_size=batch_size))
    (member_loss, member_ref), (non_member_loss, non_member_ref) = groups
    result = MembershipResult.from_losses(
        member_losses=member_loss, non_member_losses=non_member_loss,
        member_reference=member_ref, non_member_reference=non_member_ref,
    )
    ledger = PrivacyLedger(layout.ledger_path, mechanism=config.accountant)
    delta = config.budget.delta
    audit = SiteAudit(
        site=config.name, auc=result.auc, auc_calibrated=result.auc_calibrated,
        auc_untrained=result.auc_untrained, auc_null_std=result.auc_null_std, members=result.members,
        non_members=result.non_members, dp=dp,
        epsilon=_runs_epsilon(ledger, run_ids, delta) if dp else None,
        epsilon_cumulative=ledger.epsilon(delta=delta), delta=delta,
    )
    logger.info("%s membership audit of run %s: AUC %.3f (calibrated %.3f, untrained model %.3f), "
                "%d members vs %d held out, epsilon %s", audit.site, run_ids[-1], audit.auc,
                audit.auc_calibrated, audit.auc_untrained,
                audit.members, audit.non_members,
                "none (no DP)" if audit.epsilon is None else f"{audit.epsilon:.3f}")
    return audit
