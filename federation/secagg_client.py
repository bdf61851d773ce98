"""The site's ClientApp for rounds under secure aggregation (Flower SecAgg+, legacy path).

Flower 1.41's SecAgg+ exists only for the legacy ``NumPyClient`` path: ``secaggplus_mod`` reads
the reply as a legacy ``FitRes`` (``fitres.parameters``) and the server workflow needs a
``LegacyContext`` (docs/secure-aggregation.md). This app reuses :class:`SiteRuntime` unchanged
(the site's own budget, ledger and DP-SGD) and differs from :mod:`federation.client_app` in
what it sends:

* the **update** ``new - global``, not the new weights, so values are small and SecAgg+'s
  fixed-point quantization loses little;
* **clipped at the site** to the run's L2 ``update-norm-bound``: the aggregator only sees the
  masked sum and can no longer check an individual update, so the bound is enforced here
  (a non-finite update is refused outright). Clipping is post-processing of the DP-SGD
  output, so it costs no privacy.

Deployment: start the SuperNodes with this app (``federation.secagg_client:app``) and the
ServerApp ``federation.secagg_server:app``; the simulation picks both when
``FederationConfig.secure_aggregation`` is true.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import torch
from flwr.app import Context
from flwr.client import Client, ClientApp, NumPyClient
from flwr.client.mod import secaggplus_mod

from client_site.failures import Reason, SiteRefusal
from client_site.site_runtime import RoundRequest, SiteRuntime
from client_site.tasks import build_model
from federation.log_setup import configure_logging
from federation.protocol import RequestKey, decode_round_request, decode_update_norm_bound
from federation.site_binding import site_dir_of
from federation.site_failures import fixed_reason_mod
from federation.update_bound import NDArrays, clip_update

logger = logging.getLogger(__name__)

NORM_BOUND_KEY = RequestKey.UPDATE_NORM_BOUND.value


def state_keys(request: RoundRequest) -> list[str]:
    """Order of the model's tensors in the flat NDArrays list (the task's model at the preset)."""
    return list(build_model(request.task, request.model).state_dict())


class SecureSiteClient(NumPyClient):
    """A site answering legacy fit/evaluate calls with :class:`SiteRuntime`."""

    def __init__(self, runtime: SiteRuntime) -> None:
        self.runtime = runtime

    def _state(self, parameters: NDArrays, request: RoundRequest) -> dict[str, torch.Tensor]:
        keys = state_keys(request)
        if len(keys) != len(parameters):
            raise SiteRefusal(Reason.CACHE_MISMATCH, f"received {len(parameters)} tensors, the preset's model has {len(keys)}")
        return {k: torch.from_numpy(np.array(a, copy=True)) for k, a in zip(keys, parameters, strict=True)}

    def fit(self, parameters: NDArrays, config: Mapping[str, object]) -> tuple[NDArrays, int, dict]:
        """Train under the site's own budget; return the clipped update and public metrics."""
        request = decode_round_request(config)
        bound = decode_update_norm_bound(config)
        state = self._state(parameters, request)
        new_state, metrics = self.runtime.train_round(state, request)
        update = [(new_state[k] - state[k]).numpy() for k in state]
        try:
            clipped, norm = clip_update(update, bound)
        except ValueError as e:
            raise SiteRefusal(Reason.BAD_UPDATE, f"{self.runtime.name}: {e}") from e
        logger.info("%s round %d: update norm %.4f (bound %g%s)", self.runtime.name, request.round,
                    norm, bound, ", clipped" if norm > bound else "")
        return clipped, int(metrics["num-examples"]), {**metrics, "site": self.runtime.name}

    def evaluate(self, parameters: NDArrays, config: Mapping[str, object]) -> tuple[float, int, dict]:
        """Held-out validation of the global model (aggregate numbers only)."""
        request = decode_round_request(config)
        metrics = self.runtime.evaluate(self._state(parameters, request), request)
        return float(metrics["val_loss"]), int(metrics["num-examples"]), {**metrics, "site": self.runtime.name}


def _client_fn(context: Context) -> Client:
    configure_logging()
    torch.set_num_threads(1)  # one core per simulated site; a real site sets its own
    return SecureSiteClient(SiteRuntime(site_dir_of(context.node_config))).to_client()


app = ClientApp(client_fn=_client_fn, mods=[fixed_reason_mod, secaggplus_mod])
