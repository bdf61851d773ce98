"""Signed train/evaluate requests as the aggregator sends them, for ClientApp tests."""

import time

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, Metadata, RecordDict

from federation.config import FederationConfig
from infra.record_keys import RecordKey
from infra.round_integrity import sign_round


def round_request(*, run="run-7", round=4, preset="tiny", task="pretrain", **changes):
    """A complete round request (the ``config`` record), with ``changes`` applied after encoding."""
    config = FederationConfig(run_name=run, model_preset=preset, task=task).site_request()
    return {**config, "server-round": round, **changes}


def round_message(arrays, *, key=None, phase="train", config=None, node=7, **request):
    """A request carrying ``arrays`` and ``config`` (default: :func:`round_request`), signed by ``key``."""
    arrays = arrays if isinstance(arrays, ArrayRecord) else ArrayRecord(arrays)
    config = ConfigRecord(config if config is not None else round_request(**request))
    content = RecordDict({RecordKey.ARRAYS: arrays, RecordKey.CONFIG: config})
    if key is not None:
        content[RecordKey.INTEGRITY] = sign_round(arrays, config, run_id=str(config["run-name"]),
                                                  round=int(config["server-round"]), phase=phase, key=key)
    message_type = MessageType.TRAIN if phase == "train" else MessageType.EVALUATE
    metadata = Metadata(run_id=1, message_id="m1", src_node_id=1, dst_node_id=node, reply_to_message_id="",
                        group_id="1", created_at=time.time(), ttl=3600.0, message_type=message_type)
    return Message(content, metadata=metadata)
