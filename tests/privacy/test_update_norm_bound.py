"""Under secure aggregation the site, not the aggregator, bounds its update's norm."""

import math

import numpy as np
import pytest
import torch
from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays

from client_site.failures import SiteRefusal
from client_site.site_runtime import SiteRuntime
from federation.config import FederationConfig
from federation.secagg_client import NORM_BOUND_KEY, SecureSiteClient
from federation.update_bound import clip_update
from federation.server_app import initial_arrays


def _norm(arrays):
    return math.sqrt(sum(float(np.square(a, dtype=np.float64).sum()) for a in arrays))


def test_clip_update_scales_only_what_exceeds_the_bound():
    # Prepare
    small = [np.full((2, 2), 0.1, np.float32), np.zeros(3, np.float32)]
    large = [np.full((10,), 3.0, np.float32)]
    # Execute
    kept, kept_norm = clip_update(small, 1.0)
    clipped, large_norm = clip_update(large, 1.0)
    # Assert
    assert kept_norm == pytest.approx(0.2) and all(np.array_equal(a, b) for a, b in zip(kept, small))
    assert large_norm == pytest.approx(3.0 * math.sqrt(10))
    assert _norm(clipped) == pytest.approx(1.0, rel=1e-6) and clipped[0].dtype == np.float32


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_update_is_refused(bad):
    with pytest.raises(ValueError, match="not finite"):
        clip_update([np.array([1.0, bad])], 1.0)
    with pytest.raises(ValueError, match="> 0"):
        clip_update([np.ones(2)], 0.0)


def test_site_sends_an_update_within_the_bound(make_site):
    # Prepare: a real DP round at a site, with a bound well below its natural update norm
    torch.set_num_threads(1)
    site = make_site(epsilon=9.0)
    config = FederationConfig(run_name="bounded", model_preset="tiny", local_steps=2,
                              expected_batch_size=4, noise_multiplier=1.0)
    global_model = [t.numpy() for t in initial_arrays(config).to_torch_state_dict().values()]
    request = {**config.site_request(), "server-round": 1, NORM_BOUND_KEY: 0.05}
    # Execute
    update, n, metrics = SecureSiteClient(SiteRuntime(site)).fit(global_model, request)
    # Assert: an update (small), not weights; at most the bound; the DP metrics still travel
    assert len(update) == len(global_model) and n == 6
    assert _norm(update) == pytest.approx(0.05, rel=1e-5)
    assert _norm(update) < 0.1 * _norm(global_model)
    assert metrics["site"] == "hospital-a" and 0 < metrics["epsilon"] <= 9.0
    # the update is what the model moved by, only shorter
    assert parameters_to_ndarrays(ndarrays_to_parameters(update))[0].shape == global_model[0].shape


def test_wrong_model_shape_is_refused(make_site):
    site = make_site(epsilon=9.0)
    config = FederationConfig(run_name="x", model_preset="tiny")
    with pytest.raises(SiteRefusal, match="tensors"):
        SecureSiteClient(SiteRuntime(site)).fit([np.zeros(3)], {**config.site_request(), "server-round": 1,
                                                               NORM_BOUND_KEY: 1.0})
