"""The ClientApp refuses a global model its pinned aggregator key did not sign, before training."""

import time

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, Metadata, MessageType, RecordDict

from aggregator.model_integrity import INTEGRITY_RECORD, sign_global_model
from aggregator.signing import generate_signing_key, load_private_key
from client_site.failures import SiteRefusal
from federation.client_app import train


def _message(content):
    metadata = Metadata(run_id=1, message_id="m1", src_node_id=1, dst_node_id=7, reply_to_message_id="",
                        group_id="1", created_at=time.time(), ttl=3600.0, message_type=MessageType.TRAIN)
    return Message(content, metadata=metadata)


@pytest.mark.parametrize("case", ["unsigned", "foreign key"])
def test_unsigned_or_foreign_model_is_refused(tmp_path, case):
    generate_signing_key(tmp_path / "aggregator.pem")
    generate_signing_key(tmp_path / "mallory.pem")
    arrays = ArrayRecord({"w": Array(np.zeros(3, np.float32))})
    content = RecordDict({"arrays": arrays, "config": ConfigRecord({"run-name": "r", "server-round": 1})})
    if case == "foreign key":
        content[INTEGRITY_RECORD] = sign_global_model(arrays, run_id="r", round=1, phase="train",
                                                      key=load_private_key(tmp_path / "mallory.pem"))
    # The site directory does not even exist: the refusal comes before the site is touched.
    context = Context(run_id=1, node_id=7, state=RecordDict(), run_config={}, node_config={
        "site-dir": str(tmp_path / "no-site"), "aggregator-key": str(tmp_path / "aggregator.pub")})

    with pytest.raises(SiteRefusal, match="global model refused"):
        train(_message(content), context)
