"""Every ``fedmpt`` command the docs, the README or the dashboard tell a user to run exists and a test runs it.

A documented command is ``fedmpt GROUP SUB`` or ``fedmpt COMMAND`` in README.md, docs/*.md or
the dashboard's pages. It must resolve in the real ``fedmpt`` app, and some test must invoke
it: through typer's runner, a ``python -m cli`` process or a helper call (``"group", "sub"`` in its
arguments), or as part of the loopback recipe that ``tests/docs/test_deployment_recipe.py``
runs as written.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import typer

from cli.main import app

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
           *sorted((ROOT / "dashboard").rglob("*.py"))]
_COMMAND = re.compile(r"fedmpt ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?")


def documented() -> set[tuple[str, ...]]:
    """Command paths as the app resolves them, e.g. ("rounds", "start") or ("synth",)."""
    root = typer.main.get_command(app)
    paths = set()
    for source in SOURCES:
        for first, second in _COMMAND.findall(source.read_text(encoding="utf-8")):
            command = root.commands.get(first)  # type: ignore[attr-defined]
            assert command is not None, f"{source.name}: `fedmpt {first}` is no fedmpt command"
            if isinstance(command, click.Group) and second in command.commands:
                paths.add((first, second))
            else:
                paths.add((first,))
    return paths


@pytest.mark.parametrize("path", sorted(documented()), ids=" ".join)
def test_documented_command_is_run_by_a_test(path):
    from test_deployment_recipe import recipe

    tests = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py"))
    quoted = r",\s*".join(f'"{word}"' for word in path)
    as_argument = re.search(rf'(\[|"cli",\s*|\w\()\s*{quoted}', tests)
    in_recipe = re.search(rf"fedmpt {' '.join(path)}\b", recipe())
    assert as_argument or in_recipe, f"no test runs `fedmpt {' '.join(path)}`"
