"""Running Flower's own commands (``flwr``, ``flower-superlink``, ...) offline and project-local.

Every Flower process FedMPT starts gets the offline switches of :mod:`federation.flower_env`
and an explicit ``FLWR_HOME``, and is found next to the running interpreter (the venv), not
on whatever ``PATH`` says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from federation.flower_env import OFFLINE_DEFAULTS

CONNECTION = "consortium"  # name of the SuperLink connection in the consortium's FLWR_HOME


class FlowerCommandError(RuntimeError):
    """A Flower command failed; the message carries its output."""


def executable(name: str) -> str:
    """Path of a Flower console script installed with this interpreter."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def flower_env(flwr_home: Path, **extra: str) -> dict[str, str]:
    """The environment for a Flower process: offline, with its own ``FLWR_HOME``."""
    env = dict(os.environ)
    env.update(OFFLINE_DEFAULTS)
    env["FLWR_HOME"] = str(Path(flwr_home).resolve())
    # Flower starts its helpers (flower-superexec, flwr-serverapp) by name: find ours first.
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    env.update(extra)
    return env


def write_connection(flwr_home: Path, *, address: str, root_certificates: Path) -> Path:
    """Write ``$FLWR_HOME/config.toml`` with the consortium's SuperLink connection as default."""
    flwr_home = Path(flwr_home)
    flwr_home.mkdir(parents=True, exist_ok=True)
    path = flwr_home / "config.toml"
    path.write_text(
        "# Written by fedmpt: the consortium lead's connection to the SuperLink's Control API.\n"
        "# It is bound to loopback; run flwr commands on the aggregator host only.\n"
        f'[superlink]\ndefault = "{CONNECTION}"\n\n'
        f'[superlink.{CONNECTION}]\naddress = "{address}"\n'
        f'root-certificates = "{Path(root_certificates).resolve()}"\n',
        encoding="utf-8",
    )
    return path


def run_flwr(args: list[str], *, flwr_home: Path, cwd: Path | None = None,
             timeout: float = 120.0) -> str:
    """Run ``flwr ARGS`` and return its stdout; raise :class:`FlowerCommandError` on failure."""
    done = subprocess.run([executable("flwr"), *args], env=flower_env(flwr_home), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise FlowerCommandError(
            f"flwr {' '.join(args[:3])} failed ({done.returncode}): "
            f"{(done.stdout + done.stderr).strip()[-2000:]}"
        )
    return done.stdout


def run_flwr_json(args: list[str], *, flwr_home: Path, cwd: Path | None = None,
                  timeout: float = 120.0) -> dict[str, Any]:
    """Run ``flwr ARGS --format json`` and parse the JSON object it prints."""
    out = run_flwr([*args, "--format", "json"], flwr_home=flwr_home, cwd=cwd, timeout=timeout)
    start = out.find("{")
    if start < 0:
        raise FlowerCommandError(f"flwr {' '.join(args[:3])} printed no JSON: {out[-500:]}")
    parsed: dict[str, Any] = json.loads(out[start:])
    if parsed.get("success") is False:
        raise FlowerCommandError(f"flwr {' '.join(args[:3])}: {parsed.get('error-message', parsed)}")
    return parsed
