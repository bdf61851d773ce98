"""The site keeps the fine-tuned global model it receives for evaluation (``SITE_DIR/models/``).

Called by :mod:`federation.client_app` once per evaluate request, after the aggregator's
signature on the model was checked (when the site pins the aggregator's key): the evaluate
phase carries the newest aggregated model of the round. Only ``finetune`` runs are kept, since
only :class:`~client_site.downstream.model.ClinicalMedMPT` can draft reports
(``fedmpt report draft``); nothing is sent anywhere.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flwr.app import Context, Message

from client_site.model_store import save_received_model
from client_site.tasks import FINETUNE
from federation.protocol import RequestKey, decode_round_request
from federation.site_binding import aggregator_key_of, site_dir_of
from infra.record_keys import RecordKey

logger = logging.getLogger(__name__)


def keep_global_model(msg: Message, context: Context) -> Path | None:
    """Save a ``finetune`` request's global model as the site's latest model of that task.

    Returns
    -------
    Path | None
        The file written (``SITE_DIR/models/finetune/latest.pt``); None for other tasks, or when
        the write failed (logged: keeping a copy must never fail the federated round).
    """
    config = msg.content.config_records[RecordKey.CONFIG]
    request = decode_round_request(config)
    if request.task != FINETUNE:
        return None
    integrity = msg.content.config_records.get(RecordKey.INTEGRITY)
    try:
        return save_received_model(
            site_dir_of(context.node_config), msg.content.array_records[RecordKey.ARRAYS].to_torch_state_dict(),
            task=request.task, model_config=request.model, preset=str(config[RequestKey.MODEL_PRESET]),
            run_id=request.run_id, round=request.round,
            digest=str(integrity["digest"]) if integrity is not None else None,
            verified=aggregator_key_of(context.node_config) is not None,
        )
    except OSError as e:
        logger.warning("could not keep the received %s model at the site (%s)", request.task, e)
        return None
