"""Logging for FedMPT's entry points: our packages at INFO, third-party libraries at WARNING."""

from __future__ import annotations

import logging

OUR_PACKAGES = ("aggregator", "client_site", "dashboard", "federation", "privacy", "benchmarks")


def configure_logging(*, verbose: bool = False) -> None:
    """Add a root handler unless one exists, and let our packages log at INFO (idempotent)."""
    root = logging.getLogger()
    if not root.handlers:  # a host process (e.g. a Ray worker) may have configured it already
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        # Flower's "flwr" logger prints through its own handler; it would appear twice.
        handler.addFilter(lambda record: not record.name.startswith("flwr"))
        root.addHandler(handler)
        root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    for name in OUR_PACKAGES:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)
