"""docs/deployment.md's loopback recipe, run as written (the fenced block after its marker)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"
MARKER = "<!-- recipe: loopback -->"

pytestmark = pytest.mark.integration


def recipe() -> str:
    """The bash block that follows the marker."""
    text = DOC.read_text(encoding="utf-8")
    found = re.search(re.escape(MARKER) + r"\s*```bash\n(.*?)```", text, flags=re.DOTALL)
    assert found, f"{DOC} has no ```bash block after {MARKER}"
    return found.group(1)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_loopback_recipe_runs_as_written(tmp_path):
    script = tmp_path / "recipe.sh"
    script.write_text(recipe(), encoding="utf-8")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               SUPERLINK_PORT=str(_free_port()), FLEET_PORT=str(_free_port()),
               RUNTIME_PORT=str(_free_port()))
    process = subprocess.Popen(["bash", str(script)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # the recipe's group: its background jobs too
            process.wait()
        for log in tmp_path.glob("*.log"):  # what those started in sessions of their own
            for pid in re.findall(r"pid (\d+)", log.read_text(errors="replace")):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(int(pid), signal.SIGKILL)
    logs = "".join(f"\n--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in tmp_path.glob("*.log"))
    assert process.returncode == 0, out[-4000:] + logs
    assert "run loopback: completed (1 rounds)" in out, out[-4000:]
    assert re.search(r"hospital-a\s+1\s+1\s+\d+\.\d{3}\s+8", out), out[-4000:]
