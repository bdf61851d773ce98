"""The example systemd units in docs/systemd/ parse, run unprivileged and start real fedmpt commands."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

UNITS = Path(__file__).resolve().parents[2] / "docs" / "systemd"
INSTALLED = "/opt/fedmpt/.venv/bin/fedmpt"  # where the units expect the installation
FILES = sorted(UNITS.glob("*.service"))


def _service(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)  # Environment= repeats
    parser.optionxform = str  # keys are case-sensitive in systemd
    parser.read(path, encoding="utf-8")
    return parser["Service"]


def test_every_role_has_a_unit():
    assert {p.name for p in FILES} == {"fedmpt-aggregator.service", "fedmpt-site@.service",
                                       "fedmpt-dashboard.service"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_unit_runs_unprivileged_restarts_and_logs_to_the_journal(path):
    service = _service(path)
    assert service["User"] not in ("", "root") and service["Group"] not in ("", "root")
    assert service["StateDirectory"] and service["Restart"] == "on-failure"
    assert service["StandardOutput"] == service["StandardError"] == "journal"
    assert service["NoNewPrivileges"] == "yes"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_unit_commands_are_fedmpt_commands_with_options_they_have(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    service = _service(path)
    for key in ("ExecStartPre", "ExecStart"):
        if key not in service:
            continue
        words = shlex.split(service[key])
        assert words[0] == INSTALLED
        command = [w for w in words[1:] if not w.startswith(("/", "-")) and not re.match(r"^\d+$", w)]
        command = [w for w in command if w != "127.0.0.1"]
        result = CliRunner().invoke(app, [*command, "--help"])
        assert result.exit_code == 0, f"{key}: fedmpt {' '.join(command)}: {result.output}"
        for option in (w for w in words[1:] if w.startswith("--")):
            assert option in result.output, f"{key}: fedmpt {' '.join(command)} has no {option}"


def test_systemd_analyze_verifies_the_units(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is part of Debian's systemd package (installed on this image)"
    fedmpt = Path(sys.executable).with_name("fedmpt")  # the console script of this installation
    for path in FILES:
        name = path.name.replace("@.", "@hospital-a.")  # verify a template through an instance
        (tmp_path / name).write_text(path.read_text().replace(INSTALLED, str(fedmpt)))
    done = subprocess.run([analyze, "verify", "--man=no", *sorted(map(str, tmp_path.glob("*.service")))],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
