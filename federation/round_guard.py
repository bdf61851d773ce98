"""The ClientApp's Flower mod: no handler runs on a request the site has not accepted.

Before any train or evaluate handler sees a message, :func:`signed_round_mod` checks the
aggregator's signature over the global model and the whole round request against the key the
site pins (:mod:`infra.round_integrity`), then asks the site's round log
(:mod:`federation.round_log`) whether the request is new: a round the site already trained is
refused unless it is a resume of the same signed model, and a round older than the newest the
site saw in that run (a rollback) is refused. Registered once as ``ClientApp(mods=[...])``, so
a new handler cannot forget it.
"""

from __future__ import annotations

from collections.abc import Callable

from flwr.app import Context, Message

from client_site.failures import Reason, SiteRefusal
from federation.round_log import RoundLog
from federation.site_binding import aggregator_key_of, site_dir_of
from infra.round_integrity import verify_round
from infra.signatures import SignatureError, load_public_key

Handler = Callable[[Message, Context], Message]


def signed_round_mod(msg: Message, context: Context, call_next: Handler) -> Message:
    """Refuse a request its pinned aggregator key did not sign (or when no key is pinned), a replayed
    or a rolled-back one; :class:`SiteRefusal` names the reason."""
    key_path = aggregator_key_of(context.node_config)
    if key_path is None:  # fail closed: an unverifiable model is never trained or evaluated
        raise SiteRefusal(Reason.MODEL_NOT_VERIFIED, (
            "no aggregator key is pinned, so the global model cannot be verified; start the "
            "SuperNode with --node-config 'aggregator-key=\"<bundle>/aggregator_signing.pub\"' "
            "(fedmpt site start does)"))
    try:
        signed = verify_round(msg.content, phase=msg.metadata.message_type, key=load_public_key(key_path))
    except SignatureError as e:
        raise SiteRefusal(Reason.MODEL_NOT_VERIFIED, f"global model refused: {e}") from e
    RoundLog(site_dir_of(context.node_config)).admit(signed)
    return call_next(msg, context)
