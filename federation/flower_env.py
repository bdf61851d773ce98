"""Keep Flower offline and its state inside the project, wherever FedMPT runs it."""

from __future__ import annotations

import os
from pathlib import Path

OFFLINE_DEFAULTS = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
}


def configure_flower_env(flwr_home: Path) -> None:
    """Set Flower's offline switches and a project-local ``FLWR_HOME`` before flwr is imported.

    Values already set by the caller (e.g. the Makefile) are kept.
    """
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("FLWR_HOME", str(Path(flwr_home).resolve()))
