"""A Grid stand-in that pushes and pulls as Flower's Grids do, for in-process rounds.

Tests and benchmarks run the real ServerApp code (``run_rounds``, which wraps its Grid in
:class:`aggregator.reply_spill.SpillingGrid` and pulls one reply at a time) against in-process
sites; a subclass says how a site answers (:meth:`PushPullGrid.deliver`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any
from uuid import uuid4


class PushPullGrid(ABC):
    """Pushed messages wait until pulled; ``deliver`` answers one when pulled (``None``: not yet)."""

    def __init__(self) -> None:
        self.pending: dict[str, Any] = {}

    def push_messages(self, messages: Iterable[Any]) -> list[str]:
        """Queue ``messages``; return their ids (assigned here, as Flower's InMemoryGrid does)."""
        ids = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = str(uuid4())
            ids.append(message.metadata.message_id)
            self.pending[ids[-1]] = message
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> list[Any]:
        """The replies that have arrived among ``message_ids``."""
        replies = []
        for message_id in message_ids:
            reply = self.deliver(self.pending[message_id])
            if reply is not None:
                del self.pending[message_id]
                replies.append(reply)
        return replies

    @abstractmethod
    def deliver(self, message: Any) -> Any:
        """The reply to ``message``, or None while it has not arrived."""
