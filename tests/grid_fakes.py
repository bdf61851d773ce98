"""A Grid double that pushes and pulls as Flower's Grids do (``SpillingGrid`` relies on both)."""

from abc import ABC, abstractmethod
from uuid import uuid4


class PushPullGrid(ABC):
    """Pushed messages wait until pulled; ``deliver`` answers one when pulled (``None``: not yet)."""

    def __init__(self):
        self.pending = {}

    def push_messages(self, messages):
        ids = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = str(uuid4())  # as Flower's InMemoryGrid
            ids.append(message.metadata.message_id)
            self.pending[ids[-1]] = message
        return ids

    def pull_messages(self, message_ids):
        replies = []
        for message_id in message_ids:
            reply = self.deliver(self.pending[message_id])
            if reply is not None:
                del self.pending[message_id]
                replies.append(reply)
        return replies

    @abstractmethod
    def deliver(self, message):
        """The reply to ``message``, or None while it has not arrived."""
