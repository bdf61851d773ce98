"""Which site a node is: the consortium registry's name, never only what the node declares."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flwr.app import Message

from infra.record_keys import RecordKey

logger = logging.getLogger(__name__)


def declared_name(reply: Message) -> str | None:
    """The site name a reply carries (self-declared in its node config), if any."""
    record = reply.content.config_records.get(RecordKey.SITE) if not reply.has_error() else None
    return str(record["name"]) if record is not None and "name" in record else None


class SiteNames:
    """Names the site behind each node id.

    Parameters
    ----------
    registry : mapping of int to str or None
        Registered node id -> site name. When given, it alone names a site (a node's
        self-declared name is only compared with it, and a mismatch is logged once); otherwise
        the declared name is used (simulation). (default: None)
    """

    def __init__(self, registry: Mapping[int, str] | None = None) -> None:
        self.registry = dict(registry) if registry is not None else None
        self._seen: dict[int, str] = {}
        self._warned: set[int] = set()

    def is_registered(self, node: int) -> bool:
        """Whether ``node`` may contribute (always, without a registry)."""
        return self.registry is None or node in self.registry

    def of(self, node: int, reply: Message | None = None) -> str:
        """The site behind ``node``: the registered name when a registry is set."""
        declared = declared_name(reply) if reply is not None else None
        if self.registry is None:
            return declared or self._seen.get(node) or f"node-{node}"
        registered = self.registry.get(node)
        if registered is None:
            return f"unregistered-node-{node}"
        if declared is not None and declared != registered and node not in self._warned:
            self._warned.add(node)
            logger.warning("node %s declares site %r but is registered as %r; recording %r",
                           node, declared, registered, registered)
        return registered

    def known(self, node: int) -> str | None:
        """The name recorded for ``node`` so far (registry, or a reply seen earlier), if any."""
        return self.registry.get(node) if self.registry is not None else self._seen.get(node)

    def remember(self, node: int, site: str) -> bool:
        """Note that ``node`` answered as ``site``; True the first time the node is seen."""
        first = node not in self._seen
        self._seen[node] = site
        return first
