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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from dashboard.users import consortium_users_path, site_users_path
from dashboard.workdir import WORKDIR_ENV, store_path

__all__ = ["APP_PATH", "SITE_APP_PATH", "launch", "launch_site", "site_streamlit_command", "streamlit_command"]

logger = logging.getLogger(__name__)

#: The Streamlit entrypoint script.
APP_PATH = Path(__file__).resolve().with_name("app.py")
#: The site-local case viewer's entrypoint script.
SITE_APP_PATH = Path(__file__).resolve().with_name("site_app.py")

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
    return _command(APP_PATH, ["--workdir", str(Path(workdir).resolve())], port=port, address=address)


def site_streamlit_command(site_dir: Path, *, port: int = 8501, address: str = "127.0.0.1") -> list[str]:
    """The ``streamlit run`` command line that serves the site-local case viewer.

    Parameters are those of :func:`streamlit_command`, with ``site_dir`` (the hospital's site
    directory, the only folder the case viewer reads) instead of the workdir.
    """
    return _command(SITE_APP_PATH, ["--site", str(Path(site_dir).resolve())], port=port, address=address)


def _command(script: Path, args: list[str], *, port: int, address: str) -> list[str]:
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port must be in 1-65535, got {port}")
    if not address:
        raise ValueError("address must be a host name or IP address, got an empty string")
    return [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.address", address,
        "--server.port", str(int(port)),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.runOnSave", "false",
        # Streamlit's own error pages would show tracebacks to the reader.
        "--client.showErrorDetails", "none",
        "--client.toolbarMode", "viewer",
        "--",
        *args,
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
            "dashboard bound to %s, not loopback: anyone who can reach port %d can try to log in "
            "and, once logged in, sees every site's metrics and privacy spend",
            address,
            port,
        )
    if not store_path(workdir).exists():
        logger.info("no results store in %s yet; the dashboard will show how to start a run", workdir)
    if not consortium_users_path(workdir).exists():
        logger.warning("no dashboard users yet: fedmpt dashboard users add --workdir %s --name NAME "
                       "--role lead", workdir)
    env = {**os.environ, WORKDIR_ENV: str(Path(workdir).resolve())}
    return _serve(command, env, address=address, port=port)


def launch_site(site_dir: Path, *, port: int = 8501, address: str = "127.0.0.1") -> int:
    """Serve the site-local case viewer over ``site_dir`` until stopped (as :func:`launch`).

    Parameters
    ----------
    site_dir : Path
        The hospital's site directory; the case viewer reads nothing else.
    port : int
        TCP port to listen on. (default: 8501)
    address : str
        Address to bind. Anything but loopback puts patients' images within reach of the
        network (behind the login), which is allowed but logged as a warning.
        (default: "127.0.0.1")

    Returns
    -------
    int
        Streamlit's exit code (130 after Ctrl-C).

    Raises
    ------
    ImportError
        When streamlit is not installed.
    ValueError
        When ``port`` or ``address`` is invalid, or ``site_dir`` is not a folder.
    """
    if importlib.util.find_spec("streamlit") is None:
        raise ImportError("the dashboard needs streamlit: pip install -e . (or pip install streamlit)")
    if not Path(site_dir).is_dir():
        raise ValueError(f"site directory {site_dir} does not exist")
    command = site_streamlit_command(site_dir, port=port, address=address)
    if not _is_loopback(address):
        logger.warning("case viewer bound to %s, not loopback: patients' images are reachable on "
                       "port %d from the network (behind the login)", address, port)
    if not site_users_path(site_dir).exists():
        logger.warning("no case-viewer users yet: fedmpt dashboard users add --site-dir %s "
                       "--name NAME --role site", site_dir)
    env = {**os.environ, "FEDMPT_SITE_DIR": str(Path(site_dir).resolve())}
    return _serve(command, env, address=address, port=port)


def _serve(command: list[str], env: dict[str, str], *, address: str, port: int) -> int:
    logger.info("serving the dashboard on http://%s:%d/", address, port)
    process: subprocess.Popen[bytes] | None = None

    def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
        if process is None:
            raise SystemExit(128 + signum)  # stopped before Streamlit started
        if process.poll() is None:
            process.send_signal(signum)  # Streamlit stops, and wait() below returns

    with _handling(signal.SIGTERM, _on_sigterm):
        process = subprocess.Popen(command, env=env)  # noqa: S603 - fixed argv, no shell
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
            return 130
        finally:
            # Whatever ends the launcher, Streamlit must not outlive it.
            if process.poll() is None:
                process.terminate()
                process.wait()


@contextmanager
def _handling(signum: signal.Signals, handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """Install ``handler`` for ``signum`` while the block runs (main thread only: elsewhere
    Python cannot install handlers, and the default action stays)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, previous)
