"""Threat: the aggregator knows (or chooses) the randomness of DP-SGD. If the noise follows from
the run's seed and round, the aggregator regenerates it and subtracts it from the update,
recovering the clipped gradient sum exactly; two runs with the same seed draw the same noise,
so their difference cancels it; and known Poisson sampling voids the amplification the
accountant assumes.

Defence: the site draws the sampling and noise generators for every release from the OS
CSPRNG (:mod:`privacy.randomness`); nothing in the round request reaches them. Reproducible
tests need ``[testing] dp_seed`` in the site's own site.toml.
"""

import numpy as np
import opacus.optimizers.optimizer as dp_optimizer
import pytest
import torch

from client_site.site_config import SITE_CONFIG
from client_site.site_runtime import SiteRuntime
from federation.protocol import decode_round_request
from federation.config import FederationConfig
from federation.server_app import initial_arrays

SEED, ROUND = 0, 1  # what the aggregator sends, hence knows
CONFIG = {"run-name": "attack", "server-round": ROUND, "model-preset": "tiny", "local-steps": 1,
          "expected-batch-size": 4, "lr": 1e-3, "noise-multiplier": 1.5, "max-grad-norm": 1.0,
          "dp": True, "seed": SEED}
# Keys an aggregator might add to try to make the noise reproducible.
FORGED = {"dp-seed": 7, "dp_seed": 7, "testing.dp_seed": 7, "dp-test-seed": 7, "secure-mode": False}


@pytest.fixture
def recorded_noise(monkeypatch):
    """Every noise tensor DP-SGD adds, with its standard deviation, in order."""
    drawn = []
    real = dp_optimizer._generate_noise

    def record(std, reference, generator=None, secure_mode=False):
        noise = real(std, reference, generator, secure_mode)
        drawn.append((std, noise.clone()))
        return noise

    monkeypatch.setattr(dp_optimizer, "_generate_noise", record)
    return drawn


def _train_twice(site_dir, config, drawn):
    state = initial_arrays(FederationConfig(model_preset="tiny")).to_torch_state_dict()
    noises = []
    for _ in range(2):
        drawn.clear()
        SiteRuntime(site_dir).train_round(state, decode_round_request(config))
        noises.append([noise for _, noise in drawn])
    return noises


def _same(first, second):
    return len(first) == len(second) and all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_two_runs_with_the_same_seed_draw_different_noise(make_site, recorded_noise):
    # Prepare
    site_dir = make_site(epsilon=50.0)
    torch.set_num_threads(1)
    # Execute
    first, second = _train_twice(site_dir, CONFIG, recorded_noise)
    # Assert
    assert first and not _same(first, second)


def test_the_aggregators_config_cannot_set_the_test_switch(make_site, recorded_noise):
    # Prepare
    site_dir = make_site(epsilon=50.0)
    # Execute
    forged = _train_twice(site_dir, {**CONFIG, **FORGED}, recorded_noise)
    with open(site_dir / SITE_CONFIG, "a", encoding="utf-8") as handle:
        handle.write("\n[testing]\ndp_seed = 7\n")  # the site's own switch
    switched = _train_twice(site_dir, CONFIG, recorded_noise)
    # Assert: only the site's own file makes the noise repeat
    assert not _same(*forged)
    assert _same(*switched)


def test_noise_cannot_be_regenerated_from_seed_and_round(make_site, recorded_noise):
    # Prepare: the attacker derives the generators from what it sent, as the site's code did
    site_dir = make_site(epsilon=50.0)
    round_seed = int(np.random.SeedSequence([SEED, ROUND]).generate_state(1)[0])
    noise_seed = int(np.random.SeedSequence(round_seed).generate_state(3)[2])
    # Execute
    (actual, _) = _train_twice(site_dir, CONFIG, recorded_noise)
    attacker = torch.Generator().manual_seed(noise_seed)
    predicted = [torch.normal(0.0, std, noise.shape, generator=attacker)
                 for (std, _), noise in zip(recorded_noise, actual, strict=True)]
    # Assert: subtracting the predicted noise leaves an error of the noise's own size, so the
    # clipped gradient sum is not recovered
    error = torch.cat([(a - p).flatten() for a, p in zip(actual, predicted, strict=True)])
    assert error.std() > 1.0  # std of the noise itself: 1.5 x clip norm 1.0
