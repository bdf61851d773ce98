"""Threats that weaken a site's own policies without anyone noticing.

- A site without a pinned aggregator key trained and evaluated whatever model it received
  (verification failed open): now it refuses every request (:mod:`federation.client_app`).
- A delta above 1/(number of patients) allows releasing a whole patient's data, yet only
  warned: now the site refuses it unless its own site.toml says ``allow_large_delta = true``.
- The dashboard counted failed logins in the browser session, so a new session reset it:
  now the count is kept per user name in the users file, with a lockout
  (:meth:`dashboard.users.UserStore.authenticate`).
"""

import time

import numpy as np
import pytest
from argon2 import PasswordHasher, profiles
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, Metadata, MessageType, RecordDict

from client_site.failures import Reason, SiteRefusal
from client_site.site_config import SITE_CONFIG
from client_site.site_runtime import RoundRequest, SiteRuntime
from client_site.training import TrainConfig
from dashboard.users import LOCKOUT_S, MAX_FAILED_LOGINS, UserStore
from federation.client_app import train
from federation.config import FederationConfig
from federation.presets import get_preset
from federation.round_guard import signed_round_mod
from federation.server_app import initial_arrays
from federation.site_binding import SIMULATION_AGGREGATOR_KEY_ENV

TINY = get_preset("tiny")


def test_a_site_without_a_pinned_key_refuses_the_model(make_site, monkeypatch):
    # Prepare: an unsigned model, no key in the node config or the environment
    monkeypatch.delenv(SIMULATION_AGGREGATOR_KEY_ENV, raising=False)
    site_dir = make_site(epsilon=8.0)
    config = {**FederationConfig(model_preset="tiny", run_name="r").site_request(), "server-round": 1}
    content = RecordDict({"arrays": ArrayRecord({"w": Array(np.zeros(3, np.float32))}),
                          "config": ConfigRecord(config)})
    metadata = Metadata(run_id=1, message_id="m1", src_node_id=1, dst_node_id=7, reply_to_message_id="",
                        group_id="1", created_at=time.time(), ttl=3600.0, message_type=MessageType.TRAIN)
    context = Context(run_id=1, node_id=7, state=RecordDict(), run_config={},
                      node_config={"site-dir": str(site_dir)})
    # Execute / Assert
    with pytest.raises(SiteRefusal) as refused:
        signed_round_mod(Message(content, metadata=metadata), context, train)
    assert refused.value.reason == Reason.MODEL_NOT_VERIFIED
    assert not (site_dir / "privacy" / "ledger.jsonl").exists()  # nothing trained, nothing spent


def _request():
    return RoundRequest(run_id="delta", round=1, model=TINY.model, input_shape=tuple(TINY.preprocess.shape),
                        train=TrainConfig(local_steps=1, expected_batch_size=4, noise_multiplier=1.0))


def test_a_delta_above_one_over_the_patients_is_refused_unless_the_site_allows_it(make_site):
    # Prepare: 6 training patients, delta 0.25 > 1/6
    site_dir = make_site(epsilon=8.0, delta=0.25)
    state = initial_arrays(FederationConfig(model_preset="tiny")).to_torch_state_dict()
    # Execute / Assert
    with pytest.raises(SiteRefusal) as refused:
        SiteRuntime(site_dir).train_round(state, _request())
    assert refused.value.reason == Reason.DELTA_TOO_LARGE and "allow_large_delta" in str(refused.value)
    toml = (site_dir / SITE_CONFIG).read_text()
    (site_dir / SITE_CONFIG).write_text(toml.replace("[privacy]\n", "[privacy]\nallow_large_delta = true\n"))
    with pytest.warns(UserWarning, match="delta"):
        _, metrics = SiteRuntime(site_dir).train_round(state, _request())
    assert metrics["delta"] == 0.25


def test_failed_logins_lock_the_user_across_sessions(tmp_path, monkeypatch):
    # Prepare
    hasher = PasswordHasher.from_parameters(profiles.CHEAPEST)
    path = tmp_path / "dashboard_users.json"
    UserStore(path, hasher=hasher).add("rita", "reviewer", "correct horse battery")
    clock = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    # Execute: each attempt from a fresh store, as from a new browser session or process
    for attempt in range(MAX_FAILED_LOGINS):
        assert UserStore(path, hasher=hasher).authenticate("rita", f"guess {attempt}") is None
    clock[0] += 1
    locked = UserStore(path, hasher=hasher).authenticate("rita", "correct horse battery")
    clock[0] += LOCKOUT_S
    later = UserStore(path, hasher=hasher).authenticate("rita", "correct horse battery")
    # Assert
    assert locked is None
    assert later is not None and later.name == "rita"
