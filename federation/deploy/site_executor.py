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

from infra.compat import acquire_client_app_task, runtime_client

logger = logging.getLogger(__name__)

GATE_SCRIPT = Path(__file__).with_name("fab_gate.py")


def gate_command(runtime_api_address: str, token: str, approved: Path) -> list[str]:
    """The command that runs one task behind the allowlist."""
    return [sys.executable, str(GATE_SCRIPT), "--runtime-api-address", runtime_api_address,
            "--token", token, "--approved", str(Path(approved).resolve()), "--insecure",
            "--parent-pid", str(os.getpid())]


def serve(runtime_api_address: str, approved: Path, *, poll_s: float = 0.5) -> None:
    """Acquire ClientApp tasks forever and launch each behind the gate."""
    client = runtime_client(runtime_api_address)
    children: list[subprocess.Popen[bytes]] = []
    logger.info("site executor on %s, allowlist %s", runtime_api_address, approved)
    try:
        while True:
            task = acquire_client_app_task(client)
            if task is not None:
                token, task_id, run_id = task
                logger.info("task %d of run %d: starting the gated ClientApp", task_id, run_id)
                children.append(subprocess.Popen(gate_command(runtime_api_address, token, approved)))
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
