"""Start and stop the long-running processes of a real federation.

Aggregator host: ``flower-superlink`` (TLS, SuperNode authentication, persistent database,
bound to 127.0.0.1) and the Fleet proxy (:mod:`federation.deploy.proxy`) on the address
sites reach. Hospital host: ``flower-supernode`` (node key, ``--isolation process``, runtime
API on loopback) and the site executor that gates every ClientApp on the site's allowlist.

Each process gets its own process group and a log file; :meth:`ManagedProcess.stop`
terminates that group only. The SuperLink runs with ``--isolation process``: FedMPT starts
Flower's ``flower-superexec`` beside it (as the lead, who holds the signing key), and the
SuperLink itself may run as an unprivileged user (:mod:`federation.deploy.superlink_user`).
The SuperExec exits when the SuperLink is gone, as do the ServerApps it starts.
"""

from __future__ import annotations

import logging
import os
import signal
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from federation.deploy.consortium import BUNDLE_FILE, Consortium, register_pending
from federation.deploy.flower_cli import executable, flower_env
from federation.deploy.superlink_user import ServiceUser, hand_over_superlink_dir, move_legacy_database

logger = logging.getLogger(__name__)


@dataclass
class ManagedProcess:
    """A child process FedMPT started, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout`` s; return the exit code."""
        if self.alive():
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.popen.pid, sig)  # the group this process leads, nothing else
                except ProcessLookupError:
                    break
                try:
                    self.popen.wait(timeout=timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
        try:  # helpers left in the group after the leader exited
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.popen.poll()

    def kill(self) -> None:
        """SIGKILL the process group at once, as a crash or a pulled cable would."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait()


def spawn(name: str, command: list[str], *, env: dict[str, str], log_dir: Path,
          cwd: Path | None = None, user: ServiceUser | None = None) -> ManagedProcess:
    """Start ``command`` in a new process group, stdout and stderr to ``log_dir/name.log``;
    as ``user`` (no supplementary groups) when given."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    as_user = {} if user is None else {"user": user.uid, "group": user.gid, "extra_groups": []}
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                 start_new_session=True, **as_user)
    logger.info("started %s (pid %d%s), log %s", name, popen.pid,
                "" if user is None else f", user {user.name}", log_path)
    return ManagedProcess(name, popen, log_path)


def wait_https(url: str, *, ca_file: Path, expect: set[int], timeout: float = 60.0,
               process: ManagedProcess | None = None) -> int:
    """Poll ``url`` until it answers one of ``expect`` status codes; return the code."""
    context = ssl.create_default_context(cafile=str(ca_file))
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise RuntimeError(f"{process.name} exited ({process.popen.returncode}); see {process.log_path}")
        try:
            with urllib.request.urlopen(url, context=context, timeout=5) as response:
                code = int(response.status)
        except urllib.error.HTTPError as e:
            code = int(e.code)
        except (urllib.error.URLError, OSError) as e:
            last = e
            time.sleep(0.3)
            continue
        if code in expect:
            return code
        last = code
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout:.0f} s (last: {last})")


@dataclass
class AggregatorProcesses:
    """The SuperLink, the ``flower-superexec`` that runs its ServerApps, and the Fleet proxy."""

    superlink: ManagedProcess
    superexec: ManagedProcess
    proxy: ManagedProcess
    registered: list[str] = field(default_factory=list)

    @property
    def all(self) -> list[ManagedProcess]:
        return [self.superlink, self.superexec, self.proxy]

    def stop(self) -> None:
        """Stop the proxy, the SuperExec, then the SuperLink."""
        self.proxy.stop()
        self.superexec.stop()
        self.superlink.stop()

    def kill(self) -> None:
        """SIGKILL the proxy, the SuperExec and the SuperLink, as an aggregator crash would.

        A ServerApp the SuperExec started (a session of its own) exits on its own once the
        SuperLink is gone.
        """
        self.proxy.kill()
        self.superexec.kill()
        self.superlink.kill()


def start_aggregator(consortium: Consortium, *, superlink_user: ServiceUser | None = None,
                     superlink_python: str = sys.executable, log_dir: Path | None = None,
                     timeout: float = 90.0) -> AggregatorProcesses:
    """Start the SuperLink (loopback), its SuperExec and the Fleet proxy; register pending sites.

    With ``superlink_user`` the SuperLink runs as that user, which owns ``DIR/superlink`` and
    cannot read the CA or signing keys (checked before it starts); without it, as this user.
    ``superlink_python`` is the interpreter the SuperLink runs (one its user can execute).
    The ServerApp always runs under ``flower-superexec`` as this user, the one that signs.
    """
    log_dir = Path(log_dir) if log_dir else consortium.aggregator_dir / "logs"
    move_legacy_database(consortium)
    superlink_dir = consortium.database.parent
    if superlink_user is not None:
        (superlink_dir / "flwr-home").mkdir(exist_ok=True)
        hand_over_superlink_dir(consortium, superlink_user, python=superlink_python)
    superlink = spawn("superlink", [
        superlink_python, "-m", "federation.deploy.superlink",  # flower-superlink, longer DB timeout
        "--ssl-ca-certfile", str(consortium.ca_cert),
        "--ssl-certfile", str(consortium.server_cert),
        "--ssl-keyfile", str(consortium.server_key),
        "--enable-supernode-auth",
        "--database", str(consortium.database),
        "--host", "127.0.0.1", "--port", str(consortium.superlink_port),
        "--isolation", "process",
        "--disable-runtime-dependency-installation",
    ], env=flower_env(superlink_dir / "flwr-home", HOME=str(superlink_dir)), log_dir=log_dir,
        cwd=superlink_dir, user=superlink_user)
    env = flower_env(consortium.flwr_home)
    started = [superlink]
    try:
        wait_https(f"https://127.0.0.1:{consortium.superlink_port}/health", ca_file=consortium.ca_cert,
                   expect={200}, timeout=timeout, process=superlink)
        superexec = spawn("superexec", [
            executable("flower-superexec"), "--root-certificates", str(consortium.ca_cert),
            "--runtime-api-address", f"127.0.0.1:{consortium.superlink_port}",
            "--parent-pid", str(superlink.pid),
        ], env=env, log_dir=log_dir, cwd=consortium.aggregator_dir)
        started.append(superexec)
        proxy = spawn("fleet-proxy", [
            sys.executable, "-m", "federation.deploy.proxy",
            "--listen", f"{consortium.fleet_host}:{consortium.fleet_port}",
            "--upstream", f"https://127.0.0.1:{consortium.superlink_port}",
            "--ca", str(consortium.ca_cert), "--cert", str(consortium.server_cert),
            "--key", str(consortium.server_key),
        ], env=env, log_dir=log_dir)
    except BaseException:
        for process in reversed(started):
            process.stop()
        raise
    processes = AggregatorProcesses(superlink, superexec, proxy)
    try:
        local = "127.0.0.1" if consortium.fleet_host in ("0.0.0.0", "::") else consortium.fleet_host
        wait_https(f"https://{local}:{consortium.fleet_port}/health", ca_file=consortium.ca_cert,
                   expect={403}, timeout=timeout, process=proxy)
        processes.registered = register_pending(consortium)
    except BaseException:
        processes.stop()
        raise
    return processes


@dataclass
class SiteProcesses:
    """A hospital's SuperNode and its gated executor."""

    supernode: ManagedProcess
    executor: ManagedProcess

    def stop(self) -> None:
        """Stop the executor, then the SuperNode."""
        self.executor.stop()
        self.supernode.stop()

    def kill(self) -> None:
        """SIGKILL both at once, as a crash or a pulled cable would."""
        self.supernode.kill()
        self.executor.kill()


def read_bundle(bundle: Path) -> dict[str, str]:
    """Site name and SuperLink (Fleet proxy) address from ``bundle.toml``."""
    data = tomllib.loads((Path(bundle) / BUNDLE_FILE).read_text(encoding="utf-8"))
    return {"name": str(data["site"]["name"]), "address": str(data["superlink"]["address"])}


def start_site(bundle: Path, data: Path, *, runtime_port: int = 9094, log_dir: Path | None = None,
               superlink: str | None = None, max_retries: int | None = None) -> SiteProcesses:
    """Start a hospital's SuperNode (node key, process isolation) and its gated executor."""
    bundle, data = Path(bundle).resolve(), Path(data).resolve()
    info = read_bundle(bundle)
    if not (bundle / "node_key").exists():
        raise FileNotFoundError(f"{bundle / 'node_key'} is missing: the site's private node key "
                                "(revoked, or generated on another host)")
    log_dir = Path(log_dir) if log_dir else bundle / "logs"
    env = flower_env(bundle / "flwr-home")
    node_config = f'site-dir="{data}" aggregator-key="{bundle / "aggregator_signing.pub"}"'
    command = [
        executable("flower-supernode"),
        "--superlink", superlink or info["address"],
        "--root-certificates", str(bundle / "ca.crt"),
        "--auth-supernode-private-key", str(bundle / "node_key"),
        "--node-config", node_config,
        "--isolation", "process",
        "--host", "127.0.0.1", "--port", str(runtime_port),
    ]
    if max_retries is not None:
        command += ["--max-retries", str(max_retries)]
    supernode = spawn(f"supernode-{info['name']}", command, env=env, log_dir=log_dir)
    executor = spawn(f"executor-{info['name']}", [
        sys.executable, "-m", "federation.deploy.site_executor",
        "--runtime-api-address", f"127.0.0.1:{runtime_port}",
        "--approved", str(bundle / "approved_fabs.txt"),
    ], env=env, log_dir=log_dir)
    return SiteProcesses(supernode, executor)
