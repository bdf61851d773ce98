"""Keep long-running services in the foreground until SIGTERM or Ctrl-C, then stop them."""

from __future__ import annotations

import signal
import time
from typing import Any, Callable

import typer


def serve_until_signal(stop: Callable[[], None], processes: list[Any],
                       on_tick: Callable[[], object] | None = None) -> None:
    """Wait while every process lives (calling ``on_tick`` each second); stop them all on
    SIGTERM/SIGINT, exit 1 if one died."""
    stopping = {"now": False}

    def _handler(signum: int, frame: object) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    try:
        while not stopping["now"] and all(p.alive() for p in processes):
            if on_tick is not None:
                on_tick()
            time.sleep(1)
    finally:
        stop()
    dead = [p for p in processes if p.popen.returncode not in (None, 0, -15)]
    if not stopping["now"]:
        for process in dead or processes:
            typer.echo(f"{process.name} exited ({process.popen.returncode}); see {process.log_path}",
                       err=True)
        raise typer.Exit(code=1)
