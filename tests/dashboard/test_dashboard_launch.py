"""dashboard.launch: the streamlit command line, and one real start on a loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from dashboard.launch import APP_PATH, SITE_APP_PATH, launch_site, site_streamlit_command, streamlit_command

STARTUP_TIMEOUT_S = 30.0


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_command_is_loopback_headless_without_telemetry(tmp_path: Path) -> None:
    # Execute
    command = streamlit_command(tmp_path, port=8600)

    # Assert
    assert command[:5] == [sys.executable, "-m", "streamlit", "run", str(APP_PATH)]
    assert _flag(command, "--server.address") == "127.0.0.1"
    assert _flag(command, "--server.port") == "8600"
    assert _flag(command, "--server.headless") == "true"
    assert _flag(command, "--browser.gatherUsageStats") == "false"
    assert command[-3:] == ["--", "--workdir", str(tmp_path.resolve())]


def test_site_command_reads_one_site_and_hides_errors(tmp_path: Path) -> None:
    command = site_streamlit_command(tmp_path, port=8601)
    assert command[:5] == [sys.executable, "-m", "streamlit", "run", str(SITE_APP_PATH)]
    assert _flag(command, "--server.address") == "127.0.0.1"
    assert _flag(command, "--client.showErrorDetails") == "none"  # no tracebacks in the browser
    assert command[-3:] == ["--", "--site", str(tmp_path.resolve())]
    with pytest.raises(ValueError, match="does not exist"):
        launch_site(tmp_path / "nowhere")


@pytest.mark.parametrize("port", [0, 70000])
def test_bad_port(tmp_path: Path, port: int) -> None:
    with pytest.raises(ValueError, match="port must be in 1-65535"):
        streamlit_command(tmp_path, port=port)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _live_members(group: int) -> list[int]:
    """Processes of a process group that are still running (zombies awaiting a reaper excluded)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)"
        except OSError:
            continue  # exited meanwhile
        if fields[0] != "Z" and int(fields[2]) == group:
            members.append(int(stat.parent.name))
    return members


def _kill_group(group: int, grace_s: float = 10.0) -> list[int]:
    """Give the group's processes ``grace_s`` to exit, then SIGKILL the rest; the pids that were left."""
    deadline = time.monotonic() + grace_s
    while (left := _live_members(group)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left:
        os.killpg(group, signal.SIGKILL)
    return left


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
        return response.status, response.read().decode("utf-8", "replace")


@pytest.mark.parametrize(
    ("stop", "expected_rc"), [(signal.SIGINT, 130), (signal.SIGTERM, None)], ids=["ctrl-c", "sigterm"]
)
def test_launch_serves_on_loopback(
    tmp_path: Path, fill: Callable[[Path], None], stop: signal.Signals, expected_rc: int | None
) -> None:
    """Serve, fetch / and the health check, then stop as Ctrl-C or a service manager would."""
    # Prepare
    fill(tmp_path / "aggregator" / "results.sqlite")
    port = _free_port()
    # Ctrl-C works as in a terminal: earlier tests of the suite leave SIGINT ignored in this
    # process, and an ignored signal stays ignored across exec (the launcher would never see it).
    code = (
        "import logging, signal, sys; from pathlib import Path; from dashboard.launch import launch; "
        "signal.signal(signal.SIGINT, signal.default_int_handler); "
        f"logging.basicConfig(level=logging.INFO); sys.exit(launch(Path({str(tmp_path)!r}), port={port}))"
    )
    # Own session: should the launcher ever leave Streamlit behind, the group is killed below
    # and reading the shared stdout cannot hang the suite.
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)

    # Execute
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        health = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = _get(f"http://127.0.0.1:{port}/_stcore/health")
                break
            except OSError:
                time.sleep(0.25)
        page = _get(f"http://127.0.0.1:{port}/") if health else None
    finally:
        process.send_signal(stop)  # to the launcher alone; it must stop Streamlit too
        try:
            rc = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            rc = process.wait()
        orphans = _kill_group(process.pid)
    output = process.stdout.read().decode("utf-8", "replace") if process.stdout else ""

    # Assert
    assert not orphans, f"the launcher left processes {orphans} of its group running\n{output}"
    assert health == (200, "ok"), output
    assert page is not None and page[0] == 200 and "<html" in page[1].lower()
    if expected_rc is not None:
        assert rc == expected_rc, output
    assert f"http://127.0.0.1:{port}/" in output
    with pytest.raises(OSError):  # the server went down with the launcher
        _get(f"http://127.0.0.1:{port}/_stcore/health")
