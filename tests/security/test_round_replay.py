"""Threat: a round request the site already trained is sent again with another model (a replay
by the proxy or the SuperLink's database), so that the site releases a second noised update of
the same round; or a request of an older round (a rollback to an old global model) is sent
after a newer one.

Defence: the site's round log (``SITE_DIR/federation/rounds_seen.json``, written atomically
under a lock) refuses a round it already trained unless it is a resume of the same signed
model and request, and any round older than the newest it took part in for that run.
"""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Context, RecordDict

from aggregator.signing import generate_signing_key, load_private_key
from client_site.failures import SiteRefusal
from federation.round_guard import signed_round_mod
from round_messages import round_message


@pytest.fixture
def site(tmp_path):
    """A pinned aggregator key and a handler that counts the requests it was let through."""
    generate_signing_key(tmp_path / "aggregator.pem")
    context = Context(run_id=1, node_id=7, state=RecordDict(), run_config={}, node_config={
        "site-dir": str(tmp_path / "site"), "aggregator-key": str(tmp_path / "aggregator.pub")})
    handled = []

    def deliver(round, value, phase="train"):
        message = round_message(ArrayRecord({"w": Array(np.full(3, value, np.float32))}), phase=phase,
                                key=load_private_key(tmp_path / "aggregator.pem"), round=round)
        return signed_round_mod(message, context, lambda m, c: handled.append((round, phase)) or m)

    return deliver, handled


def test_a_trained_round_is_refused_with_another_model(site):
    deliver, handled = site
    deliver(2, 0.0)

    with pytest.raises(SiteRefusal, match="replay refused"):
        deliver(2, 1.0)
    assert handled == [(2, "train")]


def test_a_resume_of_the_same_signed_model_is_accepted(site):
    deliver, handled = site
    deliver(2, 0.0)
    deliver(2, 0.0)  # the aggregator crashed and resumed from its checkpoint

    assert handled == [(2, "train"), (2, "train")]


def test_an_older_round_is_refused_after_a_newer_one(site):
    deliver, handled = site
    deliver(3, 0.0)
    deliver(3, 0.0, phase="evaluate")

    with pytest.raises(SiteRefusal, match="rollback refused"):
        deliver(2, 5.0)
    with pytest.raises(SiteRefusal, match="rollback refused"):
        deliver(1, 0.0, phase="evaluate")
    assert handled == [(3, "train"), (3, "evaluate")]
