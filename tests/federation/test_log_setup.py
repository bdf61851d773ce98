"""Entry-point logging: our records get a root handler, Flower's keep only Flower's own."""

import logging

from federation.log_setup import configure_logging


def _record(name):
    return logging.LogRecord(name, logging.INFO, __file__, 1, "message", None, None)


def test_root_handler_passes_ours_and_leaves_flower_records_to_flower(monkeypatch):
    # Prepare: a process whose root logger has no handler yet (e.g. a fresh flwr-serverapp)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    level = root.level

    # Execute
    try:
        configure_logging()
    finally:
        root.setLevel(level)  # setLevel, not the attribute: it also clears the loggers' caches

    # Assert
    (handler,) = root.handlers
    assert handler.filter(_record("federation.server_app"))
    assert not handler.filter(_record("flwr"))  # Flower prints it through its own handler
