"""What ``fedmpt site start`` prints while it runs: the connection, then one line per task.

Flower's SuperNode logs ``SuperNode ID: N`` once connected, ``[RUN r, ROUND k]`` and
``Receiving: <phase> message`` for every task and ``Sending: <phase> message`` when the reply
goes out. The outcome is read from what the task left behind: a new entry in the site's
privacy ledger (trained, with the epsilon spent so far), or the refusal the gated ClientApp
wrote to the executor's log.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

_NODE = re.compile(r"SuperNode ID: (\d+)")
_TASK = re.compile(r"\[RUN (\d+)(?:, ROUND (\S+?))?\]")
_RECEIVE = re.compile(r"Receiving: (\w+) message")
_SEND = re.compile(r"Sending: (\w+) message")
_RETRY = "Connection attempt failed"
_REFUSALS = (re.compile(r"(app bundle \w+ is not approved by this site)"),
             re.compile(r"SiteRefusal: (.+)"), re.compile(r"ClientAppException.*?Message: (.+)"))


class _Tail:
    """New lines of a growing log file."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = Path(path), 0

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
    epsilon : callable returning float or None
        The epsilon the site's ledger has recorded so far (None when it cannot be read).
    """

    def __init__(self, name: str, supernode_log: Path, executor_log: Path,
                 epsilon: Callable[[], float | None]) -> None:
        self.name = name
        self.supernode, self.executor = _Tail(supernode_log), _Tail(executor_log)
        self.epsilon = epsilon
        self.node_id: int | None = None
        self._task: tuple[str, str] = ("?", "?")
        self._before: float | None = None
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
            self._task = (found.group(1), found.group(2) or "-")
        elif found := _RECEIVE.search(line):
            self._before = self.epsilon()
        elif found := _SEND.search(line):
            return [self._outcome(found.group(1))]
        return []

    def _outcome(self, phase: str) -> str:
        run, rnd = self._task
        after = self.epsilon()
        if self._refusal:
            outcome, self._refusal = f"refused: {self._refusal}", ""
        elif phase == "train" and after is not None and after != self._before:
            outcome = "trained"
        else:
            outcome = "evaluated" if phase == "evaluate" else "replied"
        eps = "" if after is None else f", epsilon after {after:.3f}"
        return f"run {run} round {rnd} {phase}: {outcome}{eps}"
