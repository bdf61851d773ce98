"""Threat: what leaves a site is not bounded by its epsilon. Training losses are statistics of
the training patients without noise; evaluation on held-out patients spends no budget, so an
aggregator asking it again and again (or on many models) learns more each time; and exception
texts (file paths, CSV cells, DICOM parser messages) reach the aggregator in Flower's error reply.

Defence: a training reply holds the DP-noised weights and the privacy bookkeeping only
(:mod:`client_site.egress`); evaluation metrics are rounded and released at most once per model
and per (run, round) (:mod:`client_site.evaluation_releases`); a failure leaves as a fixed code
and text, the details stay in the site's log (:mod:`federation.site_failures`).
"""

import time

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, Metadata, MessageType, RecordDict

from aggregator.signing import generate_signing_key, load_private_key
from client_site.failures import Reason, SiteRefusal
from client_site.site_runtime import RoundRequest, SiteRuntime
from client_site.training import TrainConfig
from federation.client_app import app as client_app
from federation.config import FederationConfig
from federation.presets import get_preset
from federation.server_app import initial_arrays
from infra.round_integrity import sign_round

TINY = get_preset("tiny")
SECRET = "/data/pacs/DOE^JANE/1.2.840.113619.dcm: pydicom could not read 'MRN0012345'"


def _request(round=1, run_id="egress"):
    return RoundRequest(run_id=run_id, round=round, model=TINY.model, input_shape=tuple(TINY.preprocess.shape),
                        train=TrainConfig(local_steps=1, expected_batch_size=4, noise_multiplier=1.0))


def _state():
    return initial_arrays(FederationConfig(model_preset="tiny")).to_torch_state_dict()


def test_training_releases_no_loss(make_site):
    # Prepare
    runtime = SiteRuntime(make_site(epsilon=50.0))
    torch.set_num_threads(1)
    # Execute
    _, metrics = runtime.train_round(_state(), _request())
    # Assert
    assert not [name for name in metrics if "loss" in name]
    assert set(metrics) <= {"num-examples", "steps", "sample_rate", "noise_multiplier", "epsilon", "delta",
                            "epsilon_budget", "epsilon_ssl", "epsilon_fine_tuning", "epsilon_ssl_cap",
                            "epsilon_fine_tuning_cap"}  # privacy bookkeeping: functions of public settings


def test_evaluation_is_released_once_per_model_and_round_and_rounded(make_site):
    # Prepare
    runtime = SiteRuntime(make_site(epsilon=50.0))
    state = _state()
    other = {k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}
    # Execute
    metrics = runtime.evaluate(state, _request(round=1))
    with pytest.raises(SiteRefusal) as same_model:
        runtime.evaluate(state, _request(round=2, run_id="another-run"))
    with pytest.raises(SiteRefusal) as same_round:
        runtime.evaluate(other, _request(round=1))
    # Assert
    assert same_model.value.reason == same_round.value.reason == Reason.ALREADY_EVALUATED
    assert all(value != value or round(value, 3) == value for value in metrics.values())  # NaN or rounded
    assert metrics["val_loss"] > 0


def test_a_failure_reaches_the_aggregator_as_a_fixed_code(make_site, tmp_path, monkeypatch, task_identity):
    # Prepare: a signed train request; the site fails with PHI in its exception text
    generate_signing_key(tmp_path / "aggregator.pem")
    key = load_private_key(tmp_path / "aggregator.pem")
    arrays = ArrayRecord(_state())
    config = {**FederationConfig(model_preset="tiny", run_name="egress").site_request(), "server-round": 1}
    content = RecordDict({"arrays": arrays, "config": ConfigRecord(config),
                          "integrity": sign_round(arrays, config, run_id="egress", round=1, phase="train", key=key)})
    metadata = Metadata(run_id=1, message_id="m1", src_node_id=1, dst_node_id=7, reply_to_message_id="",
                        group_id="1", created_at=time.time(), ttl=3600.0, message_type=MessageType.TRAIN)
    site_dir = make_site(epsilon=50.0)
    context = Context(run_id=1, node_id=7, state=RecordDict(), run_config={}, node_config={
        "site-dir": str(site_dir), "aggregator-key": str(tmp_path / "aggregator.pub")})

    def fail(self, state, request):
        raise ValueError(SECRET)

    monkeypatch.setattr(SiteRuntime, "train_round", fail)
    # Execute
    reply = client_app(Message(content, metadata=metadata), context)
    # Assert
    assert reply.has_error()
    assert reply.error.reason == ("hospital-a: internal-error: the site failed; the details are in the "
                                  "site's log")
