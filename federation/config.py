"""Configuration of a federated run, parsed once from Flower's run_config or the CLI."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

Scalar = int | float | str | bool


def _parse_bool(key: str, value: Any) -> bool:
    """A run-config flag, strictly: ``bool("false")`` would be True."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"run-config key {key!r} must be a bool, \"true\"/\"false\" or 0/1, got {value!r}")


@dataclass(frozen=True)
class FederationConfig:
    """What a consortium lead chooses for a run (site budgets are not here: sites own them).

    Parameters
    ----------
    workdir : str
        Folder holding ``aggregator/`` (store, checkpoints). (default: ``fedmpt-demo``)
    run_name : str
        Key of the run in the results store. (default: ``run-<UTC time>``)
    num_rounds, min_sites : int
        Federated rounds; sites whose update must be accepted for a round to count. (default: 3, 2)
    round_retries : int
        Times a round without ``min_sites`` trained sites is tried again (from the last good
        checkpoint) before the run fails. (default: 1)
    strategy : str
        ``fedavg``, ``fedprox`` or ``fedadam``. (default: ``fedavg``)
    proximal_mu, server_lr : float
        FedProx weight; FedAdam server learning rate. (default: 0.01, 0.01)
    round_timeout_s : float
        Seconds to wait for the sites' replies in a round. (default: 3600)
    local_steps, expected_batch_size : int
        DP-SGD steps per round and expected Poisson batch (patients). (default: 10, 8)
    lr, noise_multiplier, max_grad_norm : float
        Local learning rate, DP noise (sigma) and per-patient clip norm. (default: 1e-3, 1.5, 1.0)
    optimizer : str
        The sites' local optimizer: ``adamw``, or ``sgd`` (plain SGD, the recipe of DP heads on
        frozen features: full batch, few steps at a large rate). (default: ``adamw``)
    dp : bool
        Train under DP-SGD; sites refuse non-DP rounds unless their site.toml allows them.
        (default: True)
    model_preset : str
        Key of :data:`federation.presets.PRESETS`. (default: ``demo``)
    seed : int
        Seed of the initial model and the SSL masks; never of a site's DP sampling or noise,
        which each site draws itself (:mod:`privacy.randomness`). (default: 0)
    secure_aggregation : bool
        Flower SecAgg+ on the legacy path (docs/secure-aggregation.md). (default: False)
    update_norm_bound : float
        L2 bound on a site's update in a round: every site clips its update to it (clipping
        DP-SGD's output is post-processing) and the aggregator rejects any update above it,
        so one site cannot move the model further whatever the others send. Part of the
        signed round request. (default: 10.0)
    aggregation : str
        ``auto`` (with ``fedavg``: trimmed mean from three sites in a round on, weighted mean
        below; :mod:`aggregator.auto_robust`), ``mean``, or with ``fedavg`` the robust
        ``median`` / ``trimmed-mean``. (default: ``auto``)
    trim_beta : float
        Fraction the trimmed mean cuts at each end. (default: 0.2)
    norm_factor : float
        Reject a site update whose norm exceeds this many times the median of the other
        sites' update norms in the round; 0 turns the test off
        (:mod:`aggregator.update_validation`). (default: 10.0)
    resume : bool
        Continue run ``run_name`` from its last good signed checkpoint. (default: False)
    signing_key : str
        The aggregator's Ed25519 private key (PEM). Empty: ``<workdir>/aggregator/keys/
        aggregator_ed25519.pem``, created on first use. (default: ``""``)
    site_registry : str
        JSON file mapping registered node ids to site names (``fedmpt consortium add-site``);
        when set, a reply's site is the registered name, never the self-declared one.
        (default: ``""``, simulation: the site's own name)
    task : str
        ``pretrain`` (SSL pretraining of MedMPT) or ``finetune`` (downstream diagnosis,
        medication and report generation, :mod:`client_site.downstream`). (default: ``pretrain``)
    init_checkpoint : str
        Aggregator-side file whose weights initialise the global model: a (signed) round
        checkpoint of :mod:`aggregator.checkpoints` or a plain ``torch.save``'d state dict. For
        ``finetune``, MedMPT weights initialise the backbone (heads start fresh) and
        ClinicalMedMPT weights the whole model. (default: ``""``, a seeded random model)
    """

    workdir: str = "fedmpt-demo"
    run_name: str = ""
    num_rounds: int = 3
    min_sites: int = 2
    round_retries: int = 1
    strategy: str = "fedavg"
    proximal_mu: float = 0.01
    server_lr: float = 0.01
    round_timeout_s: float = 3600.0
    local_steps: int = 10
    expected_batch_size: int = 8
    lr: float = 1e-3
    noise_multiplier: float = 1.5
    max_grad_norm: float = 1.0
    optimizer: str = "adamw"
    dp: bool = True
    model_preset: str = "demo"
    seed: int = 0
    secure_aggregation: bool = False
    update_norm_bound: float = 10.0
    aggregation: str = "auto"
    trim_beta: float = 0.2
    norm_factor: float = 10.0
    resume: bool = False
    signing_key: str = ""
    site_registry: str = ""
    task: str = "pretrain"  # client_site.tasks.PRETRAIN (not imported: it loads torch, slowing the CLI)
    init_checkpoint: str = ""

    def __post_init__(self) -> None:
        # Imported here, not at the top: the CLI reads this class's defaults at start-up.
        from aggregator.strategies import AGGREGATIONS, STRATEGIES
        from client_site.tasks import check_task
        from client_site.training import OPTIMIZERS
        from federation.presets import PRESETS

        if not self.run_name:
            object.__setattr__(self, "run_name", time.strftime("run-%Y%m%d-%H%M%S", time.gmtime()))
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.model_preset not in PRESETS:
            raise ValueError(f"model_preset must be one of {sorted(PRESETS)}, got {self.model_preset!r}")
        if self.num_rounds < 1 or self.min_sites < 1 or self.local_steps < 1:
            raise ValueError("num_rounds, min_sites and local_steps must be >= 1")
        if self.round_retries < 0:
            raise ValueError(f"round_retries must be >= 0, got {self.round_retries}")
        check_task(self.task)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")

    @property
    def aggregator_dir(self) -> Path:
        """Aggregator state: results store and checkpoints."""
        return Path(self.workdir) / "aggregator"

    @property
    def checkpoint_dir(self) -> Path:
        """Signed checkpoints of this run, one per round."""
        return self.aggregator_dir / "checkpoints" / self.run_name

    @property
    def signing_key_path(self) -> Path:
        """The aggregator's Ed25519 private key."""
        return Path(self.signing_key) if self.signing_key else \
            self.aggregator_dir / "keys" / "aggregator_ed25519.pem"

    def config_hash(self) -> str:
        """SHA-256 of everything that changes the maths of a run.

        Left out: where things live (workdir, keys, registry), the run's name, its length
        (``num_rounds``: a resumed run may be extended), the round timeout, the retries and
        the resume flag. A run may only resume from a checkpoint with the same hash.
        """
        ignored = {"workdir", "run_name", "num_rounds", "round_timeout_s", "round_retries",
                   "resume", "signing_key", "site_registry"}
        maths = {k: v for k, v in asdict(self).items() if k not in ignored}
        return hashlib.sha256(json.dumps(maths, sort_keys=True).encode("utf-8")).hexdigest()

    def as_run_config(self) -> dict[str, Scalar]:
        """Kebab-case keys, as Flower's run_config and pyproject use."""
        return {f.name.replace("_", "-"): getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any]) -> FederationConfig:
        """Parse Flower's run_config (kebab-case keys); unknown keys are an error."""
        names = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in run_config.items():
            name = key.replace("-", "_")
            if name not in names:
                raise ValueError(f"unknown run-config key {key!r}; known: {sorted(names)}")
            kind = type(names[name].default)
            values[name] = _parse_bool(key, value) if kind is bool else kind(value)
        return cls(**values)

    def site_request(self) -> dict[str, Scalar]:
        """The round request sent to every site (it decides whether its budget allows it)."""
        from federation.protocol import RoundSettings, encode_round_request  # loads torch

        names = {f.name for f in fields(RoundSettings)}
        return encode_round_request(RoundSettings(**{k: v for k, v in asdict(self).items() if k in names}))
