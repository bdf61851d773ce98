"""The site's Flower ClientApp: turns aggregator messages into :class:`SiteRuntime` calls.

What goes back is exactly one ArrayRecord (weights, train only), one MetricRecord of
whitelisted numbers (:mod:`client_site.egress`) and the site's name. Before using a global
model, the site checks the aggregator's signature on it against the key it pins
(:mod:`aggregator.model_integrity`). The fine-tuned global model of an evaluate request stays
at the site as its latest model (:mod:`federation.received_models`), for site-local drafting.
"""

from __future__ import annotations

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from aggregator.model_integrity import verify_global_model
from aggregator.signing import SignatureError, load_public_key
from aggregator.site_recorder import SITE_RECORD
from client_site.failures import Reason, SiteRefusal
from client_site.site_runtime import RoundRequest, SiteRuntime
from client_site.tasks import PRETRAIN, check_task
from client_site.training import TrainConfig
from federation.log_setup import configure_logging
from federation.presets import get_preset
from federation.received_models import keep_global_model
from federation.site_binding import aggregator_key_of, site_dir_of
from federation.site_failures import fixed_reason_mod

app = ClientApp(mods=[fixed_reason_mod])  # failures leave as fixed codes, details stay in the site log


def _request(config: ConfigRecord) -> RoundRequest:
    preset = get_preset(str(config["model-preset"]))
    return RoundRequest(
        run_id=str(config["run-name"]),
        round=int(config["server-round"]),  # type: ignore[arg-type]
        model=preset.model,
        input_shape=tuple(preset.preprocess.shape),
        task=check_task(str(config.get("task", PRETRAIN))),
        train=TrainConfig(
            local_steps=int(config["local-steps"]),  # type: ignore[arg-type]
            expected_batch_size=int(config["expected-batch-size"]),  # type: ignore[arg-type]
            lr=float(config["lr"]),  # type: ignore[arg-type]
            noise_multiplier=float(config["noise-multiplier"]),  # type: ignore[arg-type]
            max_grad_norm=float(config["max-grad-norm"]),  # type: ignore[arg-type]
            dp=bool(config["dp"]),
            seed=int(config["seed"]),  # type: ignore[arg-type]
            # Only FedProx sends it (Flower's FedProx.configure_train); FedAvg/FedAdam: none.
            proximal_mu=float(config.get("proximal-mu", 0.0)),  # type: ignore[arg-type]
        ),
    )


def _verify(msg: Message, context: Context, phase: str) -> None:
    """Refuse a global model that the pinned aggregator key did not sign for this request."""
    key_path = aggregator_key_of(context.node_config)
    if key_path is None:  # fail closed: an unverifiable model is never trained or evaluated
        raise SiteRefusal(Reason.MODEL_NOT_VERIFIED, (
            "no aggregator key is pinned, so the global model cannot be verified; start the "
            "SuperNode with --node-config 'aggregator-key=\"<bundle>/aggregator_signing.pub\"' "
            "(fedmpt site start does)"))
    config = msg.content["config"]
    try:
        verify_global_model(msg.content, run_id=str(config["run-name"]),
                            round=int(config["server-round"]),  # type: ignore[arg-type]
                            phase=phase, key=load_public_key(key_path))
    except SignatureError as e:
        raise SiteRefusal(Reason.MODEL_NOT_VERIFIED, f"global model refused: {e}") from e


def _runtime(context: Context) -> SiteRuntime:
    configure_logging()  # a ClientApp may run in a fresh process: show the site's progress
    torch.set_num_threads(1)  # one core per simulated site; a real site sets its own
    return SiteRuntime(site_dir_of(context.node_config))


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train the received global model on this site's patients under DP."""
    _verify(msg, context, "train")
    runtime = _runtime(context)
    state = msg.content["arrays"].to_torch_state_dict()  # type: ignore[union-attr]
    new_state, metrics = runtime.train_round(state, _request(msg.content["config"]))  # type: ignore[arg-type]
    content = RecordDict({
        "arrays": ArrayRecord(new_state),
        "metrics": MetricRecord(metrics),  # type: ignore[arg-type]
        SITE_RECORD: ConfigRecord({"name": runtime.name}),
    })
    return Message(content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Validate the received global model on this site's held-out patients."""
    _verify(msg, context, "evaluate")
    keep_global_model(msg, context)  # the site's copy for site-local drafting (federation.received_models)
    runtime = _runtime(context)
    state = msg.content["arrays"].to_torch_state_dict()  # type: ignore[union-attr]
    metrics = runtime.evaluate(state, _request(msg.content["config"]))  # type: ignore[arg-type]
    content = RecordDict({
        "metrics": MetricRecord(metrics),  # type: ignore[arg-type]
        SITE_RECORD: ConfigRecord({"name": runtime.name}),
    })
    return Message(content, reply_to=msg)
