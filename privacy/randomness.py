"""Where DP-SGD's Poisson sampling and Gaussian noise come from: the site, never the aggregator.

DP holds only if whoever sees a release cannot predict its noise or which patients were
sampled. Anything the aggregator sends (seed, run name, round) is therefore kept away from
these two generators: each release gets two fresh 64-bit seeds from the operating system's
CSPRNG (``os.urandom`` through :mod:`secrets`), so no two releases share noise, whatever run
name, round or working directory they have. Opacus' ``secure_mode`` (a CSPRNG generator
inside torch) needs ``torchcsprng``, which has no build for the torch this project pins.

Reproducible tests set a seed in the site's own ``site.toml`` (``[testing] dp_seed``); the
aggregator cannot set it, and a site that has it logs a warning on every round.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import numpy as np
import torch

FRESH = "os.urandom"
TEST_SEED = "site test seed"


@dataclass(frozen=True)
class DPRandomness:
    """The two generators of one DP release.

    Attributes
    ----------
    sampling : torch.Generator
        Draws the Poisson batches.
    noise : torch.Generator
        Draws the Gaussian noise.
    source : str
        :data:`FRESH` or :data:`TEST_SEED`, for the site's log.
    """

    sampling: torch.Generator
    noise: torch.Generator
    source: str


def fresh_randomness() -> DPRandomness:
    """Generators seeded from the OS CSPRNG, new for every release."""
    sampling, noise = (torch.Generator().manual_seed(secrets.randbits(64)) for _ in range(2))
    return DPRandomness(sampling=sampling, noise=noise, source=FRESH)


def seeded_randomness(seed: int, *, run_id: str, round: int) -> DPRandomness:
    """Reproducible generators for tests, from the site's own test seed and the release.

    Parameters
    ----------
    seed : int
        The site's ``[testing] dp_seed`` (never from the aggregator).
    run_id, round : str, int
        Which release; different releases of one test site still draw different noise.
    """
    run = int.from_bytes(hashlib.sha256(run_id.encode("utf-8")).digest()[:8], "big")
    states = np.random.SeedSequence([seed, run, round]).generate_state(2, dtype=np.uint64)
    sampling, noise = (torch.Generator().manual_seed(int(s)) for s in states)
    return DPRandomness(sampling=sampling, noise=noise, source=TEST_SEED)
