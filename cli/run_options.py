"""Options shared by ``fedmpt federate`` and ``fedmpt rounds start``, defaults from the run config.

Each default is read from :class:`federation.config.FederationConfig`, so the command line,
the run config and the docs of that class cannot disagree.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import typer

from federation.config import FederationConfig

_DEFAULTS = {f.name: f.default for f in fields(FederationConfig)}


def _option(field: str, *flags: str, help: str) -> Any:
    return typer.Option(_DEFAULTS[field], *flags, help=help)


ROUNDS = _option("num_rounds", "--rounds", help="Federated rounds.")
STRATEGY = _option("strategy", "--strategy", help="fedavg, fedprox or fedadam.")
PROXIMAL_MU = _option("proximal_mu", "--proximal-mu", help="FedProx weight mu of the sites' proximal term.")
AGGREGATION = _option("aggregation", "--aggregation",
                      help="auto (fedavg: trimmed mean from 3 sites on), mean, or with fedavg: median or trimmed-mean.")
LOCAL_STEPS = _option("local_steps", "--local-steps", help="DP-SGD steps per site per round.")
EXPECTED_BATCH_SIZE = _option("expected_batch_size", "--expected-batch-size",
                              help="Expected Poisson batch (patients).")
LR = _option("lr", "--lr", help="The sites' local learning rate.")
OPTIMIZER = _option("optimizer", "--optimizer",
                    help="The sites' optimizer: adamw, or sgd (full-batch DP heads: the fine-tuning recipe).")
MAX_GRAD_NORM = _option("max_grad_norm", "--max-grad-norm", help="Per-patient clipping norm of DP-SGD.")
NOISE_MULTIPLIER = _option("noise_multiplier", "--noise-multiplier", help="DP noise multiplier sigma.")
PRESET = _option("model_preset", "--preset", help="Model preset (the sites must have ingested to it).")
SEED = _option("seed", "--seed", help="Seed of the initial model and the SSL masks; never of the sites' DP sampling or noise.")
RUN_NAME = _option("run_name", "--run-name", help="Run key in the results store (default: time-stamped).")
NORM_FACTOR = _option("norm_factor", "--norm-factor",
                      help="Reject updates > this x the other sites' median norm (0: off).")
MIN_SITES = _option("min_sites", "--min-sites",
                    help="Sites whose update must be accepted for a round to count.")
ROUND_RETRIES = _option("round_retries", "--round-retries",
                        help="Retries of a round with fewer than --min-sites trained sites.")
ROUND_TIMEOUT = _option("round_timeout_s", "--round-timeout", help="Seconds to wait for replies in a round.")
UPDATE_NORM_BOUND = _option("update_norm_bound", "--update-norm-bound",
                            help="L2 bound each site clips its update to; the aggregator rejects larger updates.")
TASK = _option("task", "--task", help="pretrain (SSL) or finetune (diagnosis, medication, reports).")
