"""Strategy-level tests build Flower messages outside a runtime: give them a task identity."""

import pytest
from flwr.supercore.task_identity import TaskIdentity


@pytest.fixture(autouse=True)
def task_identity(monkeypatch):
    """Messages built outside a Flower runtime need a task identity."""
    for name in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, name, 1)
