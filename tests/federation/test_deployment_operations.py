"""Day-to-day operation of a real deployment through the ``fedmpt`` commands, unhappy paths first.

One aggregator (SuperLink + Fleet proxy, TLS, node auth, 127.0.0.1) serves every scenario;
sites run as ``fedmpt site start`` processes, the lead's commands as ``fedmpt`` processes:

* site-a started with a wrong data path: a clear message at the site, nothing reaches the SuperLink;
* run ``refused``: site-a and site-b online but neither approved the app, site-c offline:
  the run fails (no "completed" for a run that trained nobody) and ``rounds start`` exits 1;
* the next ``rounds start`` is refused before launch, naming all three sites (exit 9);
* run ``restart`` (--force after the sites approved): site-b is stopped after its training
  reply and started again; every registered site has a row in every phase, the run completes;
* run ``aborted``: ``fedmpt rounds abort`` stops it and ``rounds status`` says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from aggregator.results_store import ResultsStore
from federation.deploy.approval import approve
from federation.deploy.consortium import add_site, init_consortium
from federation.deploy.flower_cli import flower_env
from federation.deploy.processes import spawn, start_aggregator
from federation.deploy.rounds import build_fab

pytestmark = pytest.mark.integration

SITES = ("site-a", "site-b", "site-c")
PHASE_S = 300.0  # one phase, ClientApp start-up included, on a loaded 2-core host
RUN_OPTIONS = ["--preset", "tiny", "--local-steps", "1", "--expected-batch-size", "4",
               "--noise-multiplier", "1.0", "--round-timeout", "240"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lead:
    """``fedmpt`` commands as the consortium lead types them, in the consortium's parent folder."""

    def __init__(self, root, consortium):
        self.root, self.consortium = root, consortium
        self.env = flower_env(root / ".flwr", PYTHONUNBUFFERED="1")

    def run(self, *args, timeout=60 + 4 * PHASE_S):
        return subprocess.run([sys.executable, "-m", "cli", *map(str, args)], cwd=self.root,
                              env=self.env, capture_output=True, text=True, timeout=timeout, check=False)

    def status(self, run):
        done = self.run("rounds", "status", self.consortium.root, "--run", run, "--json", timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    def sites(self):
        done = self.run("sites", self.consortium.root, "--json", timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return {s["name"]: s for s in json.loads(done.stdout)}


class SiteCli:
    """``fedmpt site start BUNDLE --data DIR`` in the foreground, as hospital IT runs it."""

    def __init__(self, name, bundle, data, log_dir, env):
        self.name = name
        self.process = spawn(f"cli-{name}", [sys.executable, "-m", "cli", "site", "start", str(bundle),
                                              "--data", str(data), "--runtime-port", str(_free_port())],
                             env=env, log_dir=log_dir, cwd=log_dir)

    def output(self):
        return self.process.log_path.read_text(errors="replace")

    def stop(self):
        self.process.stop(timeout=60)  # on SIGTERM it stops its SuperNode and executor itself
        for pid in re.findall(r"pid (\d+)", self.output()):  # in case it could not
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(pid), signal.SIGKILL)


def _trained(consortium, run):
    """(site, status) of the run's round-1 training replies the aggregator recorded."""
    path = consortium.aggregator_dir / "results.sqlite"
    if not path.exists():
        return set()
    store = ResultsStore(path, read_only=True)
    try:
        return {(p["site"], p["status"]) for p in store.participation(run)
                if (p["round"], p["phase"]) == (1, "train")}
    finally:
        store.close()


def _wait(predicate, *, timeout, what, poll=2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll)
    raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s")


@pytest.fixture(scope="module")
def deployment(tiny_sites, tmp_path_factory):
    root = tmp_path_factory.mktemp("operations")
    consortium = init_consortium(root / "consortium", superlink_port=_free_port(), fleet_port=_free_port())
    bundles = {name: add_site(consortium, name) for name in SITES}
    data = dict(zip(SITES, tiny_sites, strict=True))
    lead = Lead(root, consortium)
    aggregator = start_aggregator(consortium)
    started = []

    def start(name):
        site = SiteCli(name, bundles[name], data[name], root / "site-logs", lead.env)
        started.append(site)
        return site

    try:
        yield {"root": root, "consortium": consortium, "bundles": bundles, "data": data, "lead": lead,
               "start": start, "fab_hash": build_fab()[1]}
    finally:
        for site in reversed(started):
            site.stop()
        aggregator.stop()


@pytest.fixture(scope="module")
def story(deployment):
    """Every scenario in order against the one aggregator; returns what each step printed."""
    d, lead, seen = deployment, deployment["lead"], {}
    cons = d["consortium"].root
    t0, timings = time.monotonic(), {}

    def mark(step):
        timings[step] = round(time.monotonic() - t0)

    # A wrong data path: refused at the site before anything connects.
    seen["wrong path"] = lead.run("site", "start", d["bundles"]["site-a"], "--data",
                                  d["data"]["site-a"].parent / "hospital-aa", timeout=120)
    seen["sites after wrong path"] = lead.sites()
    mark("wrong path")

    # Two sites online that approved nothing; site-c offline.
    sites = {name: d["start"](name) for name in ("site-a", "site-b")}
    # Each `fedmpt site start` prints "connected as NAME" once its SuperNode is activated (a log
    # read: polling `fedmpt sites` would start an interpreter and a `flwr` command per poll).
    _wait(lambda: all(f"connected as {n} " in s.output() for n, s in sites.items()), timeout=180,
          what="site-a and site-b connected", poll=0.5)
    seen["refused run"] = lead.run("rounds", "start", cons, "--rounds", "1", "--min-sites", "2",
                                   "--round-retries", "0", "--run-name", "refused", *RUN_OPTIONS)
    seen["refused status"] = lead.status("refused")
    mark("refused run")
    seen["blocked launch"] = lead.run("rounds", "start", cons, "--rounds", "1", "--min-sites", "2",
                                      "--run-name", "blocked", *RUN_OPTIONS, timeout=120)
    mark("blocked launch")

    # The sites approve; the lead launches (--force: their last report was a refusal).
    for name in ("site-a", "site-b"):
        approve(d["bundles"][name], d["fab_hash"], note="reviewed in test")
    restart = subprocess.Popen([sys.executable, "-m", "cli", "rounds", "start", str(cons), "--rounds", "1",
                                "--min-sites", "2", "--run-name", "restart", "--force", *RUN_OPTIONS],
                               cwd=d["root"], env=lead.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    # Restart site-b once the aggregator has its round-1 update (between train and evaluate).
    _wait(lambda: ("site-b", "ok") in _trained(d["consortium"], "restart"), timeout=2 * PHASE_S,
          what="site-b's round-1 update at the aggregator")
    sites["site-b"].stop()
    sites["site-b"] = d["start"]("site-b")
    out, _ = restart.communicate(timeout=3 * PHASE_S)
    seen["restart run"] = (restart.returncode, out)
    seen["restart status"] = lead.status("restart")
    seen["restart results"] = lead.run("rounds", "results", cons, "--run", "restart", timeout=120)
    seen["site-a output"] = sites["site-a"].output()
    mark("restart run")

    # A run the lead aborts.
    seen["abort launch"] = lead.run("rounds", "start", cons, "--rounds", "3", "--min-sites", "2",
                                    "--run-name", "aborted", "--no-wait", *RUN_OPTIONS)
    seen["abort"] = lead.run("rounds", "abort", cons, "--run", "aborted", timeout=120)
    seen["aborted status"] = lead.status("aborted")
    mark("abort")
    print(f"\noperations timings (s since start): {timings}")
    return seen


def test_wrong_data_path_is_refused_at_the_site_and_nothing_connects(story):
    done = story["wrong path"]
    assert done.returncode == 3 and "hospital-aa does not exist" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert story["sites after wrong path"]["site-a"]["connection"] == "never connected"


def test_run_that_trained_nobody_fails_and_says_who_refused(story, deployment):
    done = story["refused run"]
    assert done.returncode == 1, done.stdout + done.stderr
    assert "site site-c: never connected" in done.stderr  # told before launch
    status = story["refused status"]
    assert status["state"].startswith("FAILED") and "0 of the required 2" in status["state"]
    rows = {(r["site"], r["phase"]): r for r in status["participation"]}
    for name in ("site-a", "site-b"):
        assert f"{deployment['fab_hash']} is not approved" in rows[(name, "train")]["reason"]
    assert rows[("site-c", "train")]["status"] == "not sent"


def test_next_launch_is_refused_before_submitting_naming_the_missing_sites(story, deployment):
    done = story["blocked launch"]
    assert done.returncode == 9, done.stdout + done.stderr
    for name in SITES:
        assert f"site {name}:" in done.stderr
    assert "refused app bundle" in done.stderr
    assert not (deployment["consortium"].runs_dir / "blocked.json").exists()


def test_site_restarted_mid_run_has_a_row_in_every_phase_and_the_run_completes(story):
    code, out = story["restart run"]
    assert code == 0, out
    status = story["restart status"]
    assert status["state"].startswith("completed")
    phases = [(r["phase"], r["site"]) for r in status["participation"]]
    assert phases == [("train", s) for s in SITES] + [("evaluate", s) for s in SITES]
    results = story["restart results"]
    assert re.search(r"site-a\s+1\s+1\s+\d+\.\d{3}", results.stdout), results.stdout + results.stderr


def test_site_start_says_it_connected_and_prints_each_task(story):
    out = story["site-a output"]
    assert re.search(r"connected as site-a \(node \d+\)", out)
    assert "train: refused: app bundle" in out and "is not approved by this site" in out
    assert re.search(r"run restart round 1 train: trained, epsilon after \d+\.\d{3}", out), out
    assert re.search(r"run \d+ evaluate: evaluated", out), out


def test_abort_stops_the_run_and_status_says_so(story):
    assert story["abort launch"].returncode == 0, story["abort launch"].stderr
    assert story["abort"].returncode == 0 and "stopped run aborted" in story["abort"].stdout
    status = story["aborted status"]
    assert "aborted by the lead" in status["state"] or status["flower"].get("status") == "finished:stopped"
