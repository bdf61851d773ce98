"""The ClientApp refuses a global model its pinned aggregator key did not sign, before training."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Context, RecordDict

from aggregator.signing import generate_signing_key, load_private_key
from client_site.failures import Reason, SiteRefusal
from federation.client_app import app, train
from federation.round_guard import signed_round_mod
from round_messages import round_message


@pytest.mark.parametrize("case", ["unsigned", "foreign key"])
def test_unsigned_or_foreign_model_is_refused(tmp_path, case):
    generate_signing_key(tmp_path / "aggregator.pem")
    generate_signing_key(tmp_path / "mallory.pem")
    arrays = ArrayRecord({"w": Array(np.zeros(3, np.float32))})
    key = load_private_key(tmp_path / "mallory.pem") if case == "foreign key" else None
    # The site directory does not even exist: the refusal comes before the site is touched.
    context = Context(run_id=1, node_id=7, state=RecordDict(), run_config={}, node_config={
        "site-dir": str(tmp_path / "no-site"), "aggregator-key": str(tmp_path / "aggregator.pub")})

    with pytest.raises(SiteRefusal, match="global model refused") as refused:
        signed_round_mod(round_message(arrays, key=key), context, train)
    reply = app(round_message(arrays, key=key), context)  # the whole app: a fixed reason leaves

    assert refused.value.reason == Reason.MODEL_NOT_VERIFIED
    assert reply.has_error() and Reason.MODEL_NOT_VERIFIED.value in reply.error.reason
    assert not (tmp_path / "no-site").exists()
