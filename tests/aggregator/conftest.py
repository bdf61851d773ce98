"""Strategy-level tests build Flower messages outside a runtime: give them a task identity."""

import pytest


@pytest.fixture(autouse=True)
def _with_task_identity(task_identity):
    """Every test here builds Flower messages (``task_identity``: tests/conftest.py)."""
