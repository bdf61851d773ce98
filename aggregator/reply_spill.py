"""Keep the aggregator's memory flat in the number of sites: replies' arrays wait on disk.

Flower's ``Grid.send_and_receive`` hands the strategy every training reply of a round at
once, each holding the whole model as serialized bytes, so the ServerApp's memory grows with
the number of sites. Everything downstream (update validation, FedAvg's
``aggregate_arrayrecords``) reads one array at a time through ``Array.numpy()``, so
:class:`SpillingGrid` pulls the replies one by one and moves each array's bytes to a private
file that :class:`SpilledArray` reads back only when asked: the process holds about one
reply plus the aggregate, whatever the number of sites.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from flwr.app import Array, Message, RecordDict
from flwr.serverapp import Grid

from infra.compat import NodeInfo, Run, set_array_metadata

POLL_INTERVAL_S = 0.5


class SpilledArray(Array):
    """An :class:`~flwr.app.Array` whose serialized bytes live in a file, read on access.

    ``dtype``, ``shape`` and ``stype`` are those of the original Array, so ``numpy()``,
    ``shape`` and ``dtype`` behave exactly as on it; ``data`` reads the file each time.
    """

    path: Path

    def __init__(self, array: Array, path: Path) -> None:
        """Write ``array``'s bytes to the new file ``path`` (mode 0600) and keep its metadata."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(array.data)
        set_array_metadata(self, array)  # Array.__init__ would need the bytes
        self.path = path

    @property
    def data(self) -> bytes:  # type: ignore[override]
        """The serialized bytes, read from the spill file."""
        return self.path.read_bytes()

    def __repr__(self) -> str:
        """Metadata and file, without reading the bytes."""
        return (f"SpilledArray(dtype={self.dtype!r}, shape={self.shape!r}, "
                f"stype={self.stype!r}, path={str(self.path)!r})")


class SpillingGrid(Grid):
    """A Grid that hands the strategy replies whose arrays wait on disk.

    Wraps another Grid and delegates everything to it but :meth:`send_and_receive`, which
    pulls one reply at a time and replaces every Array of its ArrayRecords by a
    :class:`SpilledArray` in a per-call folder under ``spill_dir``. That folder is deleted
    when the next call starts (the strategy is done with the previous replies by then) and on
    :meth:`close`. ``spill_dir`` belongs to one run: call folders left there by a crashed
    aggregator are deleted when the (resumed) run wraps its grid again.
    """

    def __init__(self, grid: Grid, spill_dir: Path, *, poll_interval: float = POLL_INTERVAL_S) -> None:
        self.grid = grid
        self.spill_dir = Path(spill_dir)
        self.poll_interval = poll_interval
        self.spill_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in self.spill_dir.glob("call-*"):
            shutil.rmtree(stale, ignore_errors=True)
        self._call_dir: Path | None = None

    def set_run(self, run: Run) -> None:
        """Delegate to the wrapped Grid."""
        self.grid.set_run(run)

    @property
    def run(self) -> Run:
        """The wrapped Grid's run."""
        return self.grid.run

    def create_message(  # pylint: disable=too-many-arguments,R0917
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        """Delegate to the wrapped Grid."""
        return self.grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        """Delegate to the wrapped Grid."""
        return self.grid.get_node_ids()

    def get_nodes(self) -> Iterable[NodeInfo]:
        """Delegate to the wrapped Grid."""
        return self.grid.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Delegate to the wrapped Grid."""
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Delegate to the wrapped Grid (replies as they come, not spilled)."""
        return self.grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Push ``messages``, then pull their replies one at a time, spilling their arrays.

        As Flower's: waits until every reply arrived, or ``timeout`` seconds passed (``None``:
        no limit), and returns the replies received.
        """
        self._remove_call_dir()
        self._call_dir = Path(tempfile.mkdtemp(prefix="call-", dir=self.spill_dir))
        pending = list(self.push_messages(messages))
        del messages
        end_time = time.time() + (timeout if timeout is not None else 0.0)
        replies: list[Message] = []
        while timeout is None or time.time() < end_time:
            for message_id in list(pending):
                for reply in self.pull_messages([message_id]):
                    replies.append(self._spill(reply, len(replies)))
                    if reply.metadata.reply_to_message_id in pending:
                        pending.remove(reply.metadata.reply_to_message_id)
            if not pending:
                break
            time.sleep(self.poll_interval)
        return replies

    def _spill(self, reply: Message, index: int) -> Message:
        """Replace every Array of ``reply``'s ArrayRecords by a SpilledArray, in place."""
        if not reply.has_content():
            return reply
        assert self._call_dir is not None
        for record_index, record in enumerate(reply.content.array_records.values()):
            for position, (key, array) in enumerate(list(record.items())):
                path = self._call_dir / f"{index}-{record_index}-{position}.npy"
                record[key] = SpilledArray(array, path)
        return reply

    def _remove_call_dir(self) -> None:
        """Delete the previous call's spill folder, if any."""
        if self._call_dir is not None:
            shutil.rmtree(self._call_dir, ignore_errors=True)
            self._call_dir = None

    def close(self) -> None:
        """Delete the last call's spill files (and ``spill_dir`` when it is left empty)."""
        self._remove_call_dir()
        try:
            self.spill_dir.rmdir()
        except OSError:
            pass

    def __enter__(self) -> SpillingGrid:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
