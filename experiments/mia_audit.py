"""``fedmpt audit mia``: membership-inference audit of a run's released global model.

The aggregator side only loads the run's latest global checkpoint and its configuration;
each site computes its own attack on its own patients (:func:`client_site.membership_audit.audit_site`)
and hands back aggregates, which go to ``WORKDIR/aggregator/reports/mia.json`` for the
dashboard. In this single-machine set-up the sites are local directories; in a deployment
each hospital runs :func:`client_site.membership_audit.audit_site` itself on the published model.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from aggregator.checkpoints import latest_checkpoint, load_signed_checkpoint
from aggregator.results_store import ResultsStore
from client_site.downstream.model import BACKBONE_PREFIX
from client_site.membership_audit import audit_site
from client_site.tasks import PRETRAIN
from federation.config import FederationConfig
from federation.presets import get_preset
from federation.server_app import RESULTS_STORE, initial_arrays
from infra.atomic_files import write_json_atomic
from infra.signatures import load_public_key

logger = logging.getLogger(__name__)

REPORT_NAME = "mia.json"
ATTACKS = {
    "auc": "loss attack: lower per-patient SSL loss => member (Yeom et al. 2018)",
    "auc_calibrated": "difficulty-calibrated loss attack, score log(loss_ref / loss) with "
                      "reference = the run's public initial model (after Watson et al. 2022)",
    "auc_untrained": "loss attack on the run's initial model, which saw no patient: the bias of "
                     "the member/held-out split itself (read the other AUCs against it)",
}


def _runs(store_path: Path) -> list[dict[str, Any]]:
    store = ResultsStore(store_path, read_only=True)
    try:
        return store.runs()  # newest first
    finally:
        store.close()


def _run_row(store_path: Path, run: str | None) -> dict[str, Any]:
    runs = _runs(store_path)
    if run:
        row = next((r for r in runs if r["run_id"] == run), None)
        if row is None:
            raise ValueError(f"no run {run!r} in {store_path}; known: {[r['run_id'] for r in runs]}")
        return row
    completed = [r for r in runs if r["status"] == "completed"]
    if not completed:
        raise ValueError(f"no completed run in {store_path}; pass --run")
    return completed[0]


def _default_key(workdir: Path, run_config: dict[str, Any]) -> Path | None:
    """The aggregator's public key next to its signing key, if this workdir has one."""
    private = run_config.get("signing-key") or ""
    config = FederationConfig(workdir=str(workdir), signing_key=str(private), run_name="audit")
    public = config.signing_key_path.with_suffix(".pub")
    return public if public.exists() else None


def load_released(checkpoint: Path, aggregator_key: Path | None) -> dict[str, Any]:
    """Load a global checkpoint, verifying the aggregator's signature when a key is known.

    Sites audit the model they were sent, so with a key an unsigned or altered checkpoint is
    refused (:class:`aggregator.checkpoints.CheckpointError`).
    """
    if aggregator_key is not None:
        return load_signed_checkpoint(checkpoint, load_public_key(aggregator_key))
    logger.warning("no aggregator public key: %s is audited without checking its signature", checkpoint)
    return dict(torch.load(checkpoint, map_location="cpu", weights_only=True))


def lineage(run_id: str, runs: list[dict[str, Any]]) -> list[str]:
    """``run_id`` and every run whose checkpoint it started from (``init-checkpoint``), oldest first.

    A fine-tuned model carries what its pretraining learnt: its privacy cost is that of the
    whole chain.
    """
    by_id = {str(r["run_id"]): json.loads(r["config_json"]) for r in runs}
    chain = [run_id]
    while True:
        init = str(by_id.get(chain[-1], {}).get("init-checkpoint") or "")
        parent = Path(init).parent.name if init else ""
        if not parent or parent not in by_id or parent in chain:
            return chain[::-1]
        chain.append(parent)


def released_backbone(model: dict[str, torch.Tensor], task: str) -> dict[str, torch.Tensor]:
    """The MedMPT weights of a released model: itself (pretrain) or its backbone (finetune).

    The loss attack scores patients by MedMPT's self-supervised loss; a fine-tuned
    ClinicalMedMPT is attacked through the backbone it releases with its heads.
    """
    if task == PRETRAIN:
        return model
    return {k[len(BACKBONE_PREFIX):]: v for k, v in model.items() if k.startswith(BACKBONE_PREFIX)}


def default_site_dirs(workdir: Path) -> list[Path]:
    """Site directories of the demo layout, ``WORKDIR/sites/*`` with a ``site.toml``."""
    return sorted(p for p in (Path(workdir) / "sites").glob("*") if (p / "site.toml").exists())


def audit_run(
    workdir: Path, *, run: str | None = None, site_dirs: list[Path] | None = None,
    seed: int = 0, draws: int = 4, aggregator_key: Path | None = None,
) -> dict[str, Any]:
    """Audit the model ``run`` released at every site; return the report.

    The released model is the run's latest global checkpoint (after ``make demo``, the newest
    completed run is the fine-tuning one: its backbone is attacked). Each site's epsilon is
    that of every run the model carries (:func:`lineage`).

    Parameters
    ----------
    workdir : Path
        Folder holding ``aggregator/results.sqlite`` and ``aggregator/checkpoints``.
    run : str, optional
        Run id (default: the newest completed run).
    site_dirs : list of Path, optional
        The sites to audit (default: :func:`default_site_dirs`).
    seed, draws : int
        Seed and number of the fixed mask draws per patient. (default: 0, 4)
    aggregator_key : Path, optional
        The aggregator's Ed25519 public key to verify the checkpoint with (default: the
        ``.pub`` next to the run's signing key in this workdir, if present).
    """
    aggregator_dir = Path(workdir) / "aggregator"
    row = _run_row(aggregator_dir / RESULTS_STORE, run)
    chain = lineage(str(row["run_id"]), _runs(aggregator_dir / RESULTS_STORE))
    run_id = str(row["run_id"])
    run_config = json.loads(row["config_json"])
    checkpoint = latest_checkpoint(aggregator_dir / "checkpoints" / run_id)
    if checkpoint is None:
        raise FileNotFoundError(f"run {run_id} has no global checkpoint under {aggregator_dir / 'checkpoints'}")
    key = aggregator_key or _default_key(Path(workdir), run_config)
    released = load_released(checkpoint, key)
    task = str(run_config.get("task", PRETRAIN))
    preset_name = str(run_config.get("model-preset", "demo"))
    reference = initial_arrays(FederationConfig(
        model_preset=preset_name, seed=int(run_config.get("seed", 0)), run_name=run_id,
    )).to_torch_state_dict()
    dp = bool(run_config.get("dp", True))
    sites = site_dirs if site_dirs is not None else default_site_dirs(Path(workdir))
    if not sites:
        raise ValueError(f"no site directory given and none under {Path(workdir) / 'sites'}")
    results: dict[str, Any] = {}
    for site_dir in sites:
        audit = audit_site(site_dir, model_cfg=get_preset(preset_name).model,
                           released=released_backbone(released["model"], task),
                           reference=reference, run_ids=chain, dp=dp, seed=seed, draws=draws)
        results[audit.site] = audit.release()
    return {
        "run": run_id,
        "task": task,
        "runs_in_model": chain,
        "round": int(released.get("round", -1)),
        "checkpoint": checkpoint.name,
        "signature_verified": key is not None,
        "model_preset": preset_name,
        "dp": dp,
        "attacks": ATTACKS,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sites": results,
    }


def write_report(workdir: Path, report: dict[str, Any]) -> Path:
    """Write ``WORKDIR/aggregator/reports/mia.json`` atomically (strict JSON, no NaN)."""
    path = Path(workdir) / "aggregator" / "reports" / REPORT_NAME
    write_json_atomic(path, report, sort_keys=True)
    return path
