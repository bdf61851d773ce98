"""`fedmpt demo`, then the audit the dashboard's Privacy page tells reviewers to run, and the baselines.

Small consortia (demo: 3 sites of 24 patients, its budgets, the tiny preset on 64x64 slices;
compare: 2 sites of 8; 1 round each), through the real command line in its own process; minutes
long, so marked integration (`make integration`). The demo's budgets need 24 patients per site:
with 8, the sampling rate makes every round cost more than they allow.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def _fedmpt(*args, cwd):
    done = subprocess.run([sys.executable, "-m", "cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_demo_then_audit_mia_audits_the_fine_tuned_release(tmp_path):
    workdir = tmp_path / "fedmpt-demo"
    _fedmpt("demo", "--workdir", workdir, "--sites", "3", "--patients", "24", "--rounds", "1",
            "--finetune-rounds", "1", "--preset", "tiny", "--matrix", "64", "--public-patients", "8", cwd=tmp_path)

    out = _fedmpt("audit", "mia", "--workdir", workdir, "--draws", "1", "--threads", "1", cwd=tmp_path)

    report = json.loads((workdir / "aggregator" / "reports" / "mia.json").read_text())
    assert report["task"] == "finetune" and len(report["runs_in_model"]) == 2, out
    assert len(report["sites"]) == 3 and all(0 <= s["auc"] <= 1 for s in report["sites"].values())
    results = _fedmpt("rounds", "results", workdir, "--run", report["run"], cwd=tmp_path)
    assert "completed (1 rounds)" in results


def test_experiment_compare_writes_the_comparison(tmp_path):
    workdir = tmp_path / "w"
    _fedmpt("experiment", "compare", "--workdir", workdir, "--sites", "2", "--patients", "8",
            "--preset", "tiny", "--matrix", "64", "--public-patients", "8", "--rounds", "1", "--local-steps", "1",
            "--epsilons", "8", cwd=tmp_path)
    assert (workdir / "aggregator" / "reports" / "comparison.csv").exists()
