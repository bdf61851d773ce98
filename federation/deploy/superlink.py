"""``flower-superlink`` with a longer SQLite busy timeout.

Flower 1.41 opens its state database with ``PRAGMA busy_timeout = 5000``. On a loaded
aggregator host (verified at a load average of 8 on 2 cores) a writer can hold the lock
longer than that; requests then fail with ``database is locked`` (HTTP 500), a SuperNode's
reply upload is lost, and the SuperLink's ``flower-superexec`` helper exits on its first 500,
so no further run can start. This launcher raises the timeout (Flower reads the pragma list
at each new connection) and then runs Flower's own ``flower-superlink`` entry point with the
same arguments.

Run: ``python -m federation.deploy.superlink <flower-superlink arguments>``
"""

from __future__ import annotations

import os
import sys

from infra.compat import patch_sqlite_busy_timeout, run_flower_superlink

BUSY_TIMEOUT_MS = int(os.environ.get("FEDMPT_SUPERLINK_BUSY_TIMEOUT_MS", "120000"))


def main() -> None:
    """Raise the busy timeout, then hand over to Flower's ``flower-superlink``."""
    patch_sqlite_busy_timeout(BUSY_TIMEOUT_MS)
    sys.argv[0] = "flower-superlink"
    sys.exit(run_flower_superlink())


if __name__ == "__main__":
    main()
