"""A ClientApp mod that turns any exception of a handler into a fixed-text error reply.

Flower puts ``str(exception)`` into the error reply it sends the aggregator (and the simulation
engine adds the site's whole traceback). Behind this mod, the aggregator receives only
:func:`client_site.failures.public_reason` (a code and a fixed text); the exception and its
traceback are logged at the site. The reply names the site (its public name, from site.toml):
under secure aggregation a failure carries no node id.
"""

from __future__ import annotations

import logging

from flwr.app import Context, Error, Message
from flwr.clientapp.typing import ClientAppCallable
from flwr.common.constant import ErrorCode

from client_site.failures import SiteRefusal, public_reason
from client_site.site_config import load_site_config
from federation.site_binding import site_dir_of

logger = logging.getLogger(__name__)


def fixed_reason_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Call the handler; on any exception log it here and reply with a fixed reason only."""
    try:
        return call_next(msg, context)
    except Exception as e:  # noqa: BLE001  (every failure is answered, none leaks its text)
        if isinstance(e, SiteRefusal):
            logger.warning("refused %s request: %s", msg.metadata.message_type, e)
        else:
            logger.exception("failed %s request", msg.metadata.message_type)
        name = _site_name(context)
        reason = f"{name}: {public_reason(e)}" if name else public_reason(e)
        return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=msg)


def _site_name(context: Context) -> str | None:
    """The site's public name (it goes with every reply anyway); None if it cannot be read."""
    try:
        return load_site_config(site_dir_of(context.node_config)).name
    except Exception:  # noqa: BLE001  (a reply must go out whatever is wrong with the site)
        return None
