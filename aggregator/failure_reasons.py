"""Short, readable reasons for a site's failed reply.

A site's refusal (``SiteRefusal``: budget, non-DP, cache grid) reaches the aggregator wrapped:
Flower prefixes ``Exception ClientAppException occurred. Message: ...`` and the simulation
engine adds Ray's whole remote traceback. The store, the logs and the dashboard keep the
site's own message (the full text stays in the Flower log).
"""

from __future__ import annotations

import re

_MESSAGE = re.compile(r"Message: (.+?)(?:'>)?\s*$", flags=re.MULTILINE)


def concise_reason(reason: str) -> str:
    """The last ``Message: ...`` of a wrapped error reason, else the reason stripped."""
    found = _MESSAGE.findall(reason)
    return found[-1].strip() if found else reason.strip()
