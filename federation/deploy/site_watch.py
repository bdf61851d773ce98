"""What ``fedmpt site start`` prints while it runs: the connection, then one line per task.

Flower's SuperNode logs ``SuperNode ID: N`` once connected, ``[RUN r]`` and
``Receiving: <phase> message`` for every task and ``Sending: <phase> message`` when the reply
goes out. The log names Flower's run id but no round; the outcome is read from what the task
left behind: a new entry in the site's privacy ledger (trained: the run's name and round, and
the epsilon spent so far), or the refusal the gated ClientApp wrote to the executor's log.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

LedgerState = tuple[float, dict[str, Any] | None]  # epsilon spent, last segment entry

_NODE = re.compile(r"SuperNode ID: (\d+)")
_TASK = re.compile(r"\[RUN (\d+)")
_RECEIVE = re.compile(r"Receiving: (\w+) message")
_SEND = re.compile(r"Sending: (\w+) message")
_RETRY = "Connection attempt failed"
_REFUSALS = (re.compile(r"(app bundle \w+ is not approved by this site)"),
             re.compile(r"SiteRefusal: (.+)"), re.compile(r"ClientAppException.*?Message: (.+)"))


class _Tail:
    """New lines of a growing log file, from ``offset`` (bytes) on."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path, self.offset = Path(path), offset

    def new_lines(self) -> list[str]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        return complete.decode("utf-8", errors="replace").splitlines()


class SiteWatch:
    """Turn the SuperNode's and executor's logs into lines a hospital's IT can read.

    Parameters
    ----------
    name : str
        The site's name in its bundle.
    supernode_log, executor_log : Path
        Log files of the two processes ``fedmpt site start`` runs.
    ledger : callable returning (float, dict or None) or None
        The epsilon the site's ledger has recorded so far and its last DP segment (run_id,
        round), or None when it cannot be read.
    offsets : mapping of Path to int
        Where each log ended before these processes started (the logs are appended to).
    """

    def __init__(self, name: str, supernode_log: Path, executor_log: Path,
                 ledger: Callable[[], LedgerState | None], offsets: dict[Path, int]) -> None:
        self.name = name
        self.supernode = _Tail(supernode_log, offsets.get(Path(supernode_log), 0))
        self.executor = _Tail(executor_log, offsets.get(Path(executor_log), 0))
        self.ledger = ledger
        self.node_id: int | None = None
        self._run = "?"
        self._before: LedgerState | None = None
        self._retrying = False
        self._refusal = ""

    def poll(self) -> list[str]:
        """Lines to print for what happened since the last poll."""
        out: list[str] = []
        for line in self.executor.new_lines():
            for pattern in _REFUSALS:
                found = pattern.search(line)
                if found:
                    self._refusal = found.group(1).strip().rstrip("'\">")
        for line in self.supernode.new_lines():
            out.extend(self._on_supernode_line(line))
        return out

    def _on_supernode_line(self, line: str) -> list[str]:
        if (found := _NODE.search(line)) and self.node_id is None:
            self.node_id = int(found.group(1))
            return [f"connected as {self.name} (node {self.node_id})"]
        if _RETRY in line and not self._retrying and self.node_id is None:
            self._retrying = True
            return ["cannot reach the SuperLink yet; retrying (fedmpt site check tells why)"]
        if found := _TASK.search(line):
            self._run = found.group(1)
        elif _RECEIVE.search(line):
            self._before = self.ledger()
        elif found := _SEND.search(line):
            return [self._outcome(found.group(1))]
        return []

    def _outcome(self, phase: str) -> str:
        after = self.ledger()
        task = f"run {self._run} {phase}"
        if self._refusal:
            outcome, self._refusal = f"refused: {self._refusal}", ""
        elif phase == "train" and after is not None and after != self._before and after[1]:
            segment = after[1]
            task, outcome = f"run {segment['run_id']} round {segment['round']} train", "trained"
        else:
            outcome = "evaluated" if phase == "evaluate" else "replied"
        eps = "" if after is None else f", epsilon after {after[0]:.3f}"
        return f"{task}: {outcome}{eps}"
