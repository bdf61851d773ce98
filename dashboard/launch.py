"""Start the dashboard as a local Streamlit server (behind ``fedmpt dashboard --workdir DIR``)."""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from dashboard.workdir import WORKDIR_ENV, store_path

__all__ = ["APP_PATH", "launch", "streamlit_command"]

logger = logging.getLogger(__name__)

#: The Streamlit entrypoint script.
APP_PATH = Path(__file__).resolve().with_name("app.py")

# Seconds to let Streamlit shut down after Ctrl-C before it is terminated.
_SHUTDOWN_GRACE_S = 10.0


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def streamlit_command(workdir: Path, *, port: int = 8501, address: str = "127.0.0.1") -> list[str]:
    """The ``streamlit run`` command line that serves the dashboard.

    Parameters
    ----------
    workdir : Path
        The consortium's workdir; the app reads ``workdir/aggregator/results.sqlite``.
    port : int
        TCP port to listen on, 1-65535. (default: 8501)
    address : str
        Address to bind; loopback keeps the per-site results off the network.
        (default: "127.0.0.1")

    Returns
    -------
    list[str]
        Arguments for ``subprocess``, starting with this interpreter.

    Raises
    ------
    ValueError
        When ``port`` is not in 1-65535 or ``address`` is empty.
    """
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port must be in 1-65535, got {port}")
    if not address:
        raise ValueError("address must be a host name or IP address, got an empty string")
    return [
        sys.executable, "-m", "streamlit", "run", str(APP_PATH),
        "--server.address", address,
        "--server.port", str(int(port)),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.runOnSave", "false",
        "--",
        "--workdir", str(Path(workdir).resolve()),
    ]  # fmt: skip


def launch(workdir: Path, *, port: int = 8501, address: str = "127.0.0.1") -> int:
    """Serve the dashboard until the server stops or the user presses Ctrl-C.

    Parameters
    ----------
    workdir : Path
        The consortium's workdir. It may be empty: the dashboard then says how to fill it.
    port : int
        TCP port to listen on. (default: 8501)
    address : str
        Address to bind. Anything but loopback exposes every site's metrics to the network,
        which is allowed but logged as a warning. (default: "127.0.0.1")

    Returns
    -------
    int
        Streamlit's exit code (130 after Ctrl-C). A SIGTERM sent to this process is passed on
        to Streamlit, whose exit code is then returned.

    Raises
    ------
    ImportError
        When streamlit is not installed.
    ValueError
        When ``port`` or ``address`` is invalid.
    """
    if importlib.util.find_spec("streamlit") is None:
        raise ImportError("the dashboard needs streamlit: pip install -e . (or pip install streamlit)")
    command = streamlit_command(workdir, port=port, address=address)
    if not _is_loopback(address):
        logger.warning(
            "dashboard bound to %s, not loopback: anyone who can reach port %d sees every "
            "site's metrics and privacy spend",
            address,
            port,
        )
    if not store_path(workdir).exists():
        logger.info("no results store in %s yet; the dashboard will show how to start a run", workdir)
    logger.info("serving the dashboard on http://%s:%d/", address, port)
    env = {**os.environ, WORKDIR_ENV: str(Path(workdir).resolve())}
    process = subprocess.Popen(command, env=env)  # noqa: S603 - fixed argv, no shell
    with _forward_sigterm(process):
        try:
            return process.wait()
        except KeyboardInterrupt:
            # A terminal's Ctrl-C reaches Streamlit too, a signal sent to this process alone
            # does not: pass it on, then give Streamlit time to close its sessions.
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=_SHUTDOWN_GRACE_S)
            except subprocess.TimeoutExpired:
                logger.warning("streamlit did not stop within %.0f s; terminating it", _SHUTDOWN_GRACE_S)
                process.terminate()
                process.wait()
            return 130


@contextmanager
def _forward_sigterm(process: subprocess.Popen[bytes]) -> Iterator[None]:
    """Pass SIGTERM on to Streamlit, so that stopping the launcher never orphans the server."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def _forward(signum: int, _frame: FrameType | None) -> None:
        if process.poll() is None:
            process.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, _forward)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
