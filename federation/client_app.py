"""The site's Flower ClientApp: turns aggregator messages into :class:`SiteRuntime` calls.

What goes back is exactly one ArrayRecord (train only: the global model plus the site's update
clipped to the run's ``update-norm-bound``, :mod:`federation.update_bound`), one MetricRecord
of whitelisted numbers (:mod:`client_site.egress`) and the site's name. No handler runs before
the ClientApp's mod (:mod:`federation.round_guard`) has checked the aggregator's signature over
the global model and the whole round request against the key the site pins, and refused a
replayed or rolled-back round. The fine-tuned global model of an evaluate request stays at the
site as its latest model (:mod:`federation.received_models`), for site-local drafting.
"""

from __future__ import annotations

import logging

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from client_site.site_runtime import SiteRuntime
from federation.log_setup import configure_logging
from federation.protocol import decode_round_request, decode_update_norm_bound
from federation.received_models import keep_global_model
from federation.round_guard import signed_round_mod
from federation.site_binding import site_dir_of
from federation.site_failures import fixed_reason_mod
from federation.update_bound import clip_state
from infra.record_keys import RecordKey

logger = logging.getLogger(__name__)

# Outermost first: any failure (a refused request included) leaves as a fixed code and text,
# details stay in the site's log; then no handler runs on a request the site has not accepted.
app = ClientApp(mods=[fixed_reason_mod, signed_round_mod])


def _runtime(context: Context) -> SiteRuntime:
    configure_logging()  # a ClientApp may run in a fresh process: show the site's progress
    torch.set_num_threads(1)  # one core per simulated site; a real site sets its own
    return SiteRuntime(site_dir_of(context.node_config))


def _reply(msg: Message, metrics: dict[str, float], name: str, arrays: ArrayRecord | None = None) -> Message:
    content = RecordDict({RecordKey.ARRAYS: arrays} if arrays is not None else {})
    content[RecordKey.METRICS] = MetricRecord({k: v for k, v in metrics.items()})
    content[RecordKey.SITE] = ConfigRecord({"name": name})
    return Message(content, reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train the received global model on this site's patients under DP."""
    runtime = _runtime(context)
    state = msg.content.array_records[RecordKey.ARRAYS].to_torch_state_dict()
    config = msg.content.config_records[RecordKey.CONFIG]
    new_state, metrics = runtime.train_round(state, decode_round_request(config))
    bound = decode_update_norm_bound(config)
    clipped, norm = clip_state(new_state, state, bound)
    logger.info("%s: update norm %.4g (bound %g%s)", runtime.name, norm, bound, ", clipped" if norm > bound else "")
    return _reply(msg, metrics, runtime.name, ArrayRecord(clipped))


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Validate the received global model on this site's held-out patients."""
    keep_global_model(msg, context)  # the site's copy for site-local drafting (federation.received_models)
    runtime = _runtime(context)
    state = msg.content.array_records[RecordKey.ARRAYS].to_torch_state_dict()
    metrics = runtime.evaluate(state, decode_round_request(msg.content.config_records[RecordKey.CONFIG]))
    return _reply(msg, metrics, runtime.name)
