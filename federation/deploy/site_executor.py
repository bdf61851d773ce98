"""The site's executor: Flower's SuperExec loop, launching the FAB gate instead of flwr-clientapp.

With ``flower-supernode --isolation process`` the SuperNode only queues tasks on its local
runtime API (loopback). This loop acquires each ClientApp task, as ``flower-superexec`` does,
and starts :mod:`federation.deploy.fab_gate` for it, which checks the FAB hash against the
site's allowlist before any of the FAB is unpacked.

Run: ``python -m federation.deploy.site_executor --runtime-api-address 127.0.0.1:PORT
--approved BUNDLE/approved_fabs.txt``
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

logger = logging.getLogger(__name__)

GATE_SCRIPT = Path(__file__).with_name("fab_gate.py")


def gate_command(runtime_api_address: str, token: str, approved: Path) -> list[str]:
    """The command that runs one task behind the allowlist."""
    return [sys.executable, str(GATE_SCRIPT), "--runtime-api-address", runtime_api_address,
            "--token", token, "--approved", str(Path(approved).resolve()), "--insecure",
            "--parent-pid", str(os.getpid())]


def serve(runtime_api_address: str, approved: Path, *, poll_s: float = 0.5) -> None:
    """Acquire ClientApp tasks forever and launch each behind the gate."""
    from flwr.proto.runtime_pb2 import AcquireTaskRequest
    from flwr.supercore.constant import TaskType
    from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor
    from flwr.supercore.retry import make_simple_http_retry_invoker
    from flwr.supercore.runtime import RuntimeHttpClient

    client = RuntimeHttpClient.from_server_address(
        server_address=runtime_api_address, insecure=True, root_certificates=None,
        interceptors=[RuntimeVersionHttpInterceptor(component_name="SuperExec")],
        retry_invoker=make_simple_http_retry_invoker(),
    )
    children: list[subprocess.Popen[bytes]] = []
    logger.info("site executor on %s, allowlist %s", runtime_api_address, approved)
    try:
        while True:
            response = client.AcquireTask(AcquireTaskRequest(
                supported_task_types=[TaskType.CLIENT_APP], agentapp_fab_hashes=[]))
            if response.HasField("task") and response.token:
                logger.info("task %d of run %d: starting the gated ClientApp",
                            response.task.task_id, response.task.run_id)
                children.append(subprocess.Popen(gate_command(runtime_api_address, response.token,
                                                              approved)))
            children = [c for c in children if c.poll() is None]
            time.sleep(poll_s)
    finally:
        client.close()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runtime-api-address", required=True)
    parser.add_argument("--approved", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s site-executor: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
    serve(args.runtime_api_address, args.approved)


if __name__ == "__main__":
    main()
