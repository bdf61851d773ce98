"""A real federation on loopback: separate processes, TLS, node authentication, the Fleet proxy.

One module-scoped consortium: the SuperLink (TLS, ``--enable-supernode-auth``, persistent
database, 127.0.0.1) behind the Fleet proxy, three SuperNodes as separate processes (each with
its gated executor) and one 2-round FedAdam run of the tiny preset, during which:

* site-c has not approved the app and refuses every task;
* an unregistered node tries to join;
* the aggregator (SuperLink + proxy) is SIGKILLed once round 1 is checkpointed, a forged
  round-2 checkpoint appears, and ``fedmpt aggregator start DIR --resume`` brings it back;
* site-b is SIGKILLed after receiving its round-2 training message.
"""

import contextlib
import dataclasses
import json
import os
import pwd
import re
import shutil
import signal
import socket
import sys
import time

import httpx
import pytest
from flwr.app import Error, Message
from flwr.supercore.task_identity import TaskIdentity

from aggregator.checkpoints import SIGNATURE_SUFFIX, checkpoint_path, load_signed_checkpoint
from aggregator.results_store import ResultsStore
from aggregator.signing import load_or_create_signing_key
from client_site.layout import SiteLayout
from infra.signatures import load_public_key
from federation.deploy.approval import approve
from federation.deploy.consortium import add_site, init_consortium
from federation.deploy.flower_cli import CONNECTION, executable, flower_env, run_flwr
from federation.deploy.pki import make_node_key
from federation.deploy.processes import spawn, start_aggregator, start_site
from federation.deploy.rounds import APP_DIR, launch, run_config_for, snapshot_app, wait_for
from federation.deploy.superlink_user import DEFAULT_USER, service_user
from federation.server_app import run_rounds
from federation_helpers import InProcessGrid
from privacy.ledger import PrivacyLedger
from superlink_user_helpers import folder_the_superlink_user_reaches, opens_as, superlink_python_for, uid_of

SITES = ("site-a", "site-b", "site-c")  # registry names; the data dirs call themselves hospital-*
RUN = "deploy"

# Deadlines, about 4x what each step took on this project's 2-core host under load (see
# docs/deployment.md section 6): a ClientApp process per message, three sites on two cores.
PHASE_S = 300.0      # one train or evaluate phase, ClientApp start-up included (58-82 s)
RESTART_S = 240.0    # aggregator back up and the run resubmitted (12-17 s; SuperNodes retry every <= 20 s)
HEARTBEAT_S = 180.0  # Flower declares a dead node after 2 missed 30-s heartbeats (60 s)

# 3.5-5.5 min on this project's shared 2-core host, so deselected from `make test`
# (pyproject addopts); `make integration` runs it.
pytestmark = pytest.mark.integration


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tails(log_paths, lines=30):
    parts = []
    for path in log_paths:
        text = path.read_text(errors="replace").splitlines() if path.exists() else ["(no log)"]
        parts.append(f"--- {path.name} (last {lines} lines) ---\n" + "\n".join(text[-lines:]))
    return "\n".join(parts)


def _wait_until(predicate, *, timeout, what, logs, poll=1.0):
    """Poll ``predicate``; on timeout, fail with the tails of the processes' logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll)
    raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s\n{_tails(logs())}")


def _store_rows(consortium, query):
    path = consortium.aggregator_dir / "results.sqlite"
    if not path.exists():
        return []
    store = ResultsStore(path, read_only=True)
    try:
        return query(store)
    except Exception:  # noqa: BLE001  (the ServerApp has not created the tables yet)
        return []
    finally:
        store.close()


def _run_row(consortium):
    rows = _store_rows(consortium, lambda s: [r for r in s.runs() if r["run_id"] == RUN])
    return rows[0] if rows else {}


def _signature_of(checkpoint):
    return checkpoint.with_name(checkpoint.name + SIGNATURE_SUFFIX)


def _forge_round_2(checkpoints):
    """Round 1's checkpoint with one byte flipped, under round 1's signature, as round 2."""
    good, forged = checkpoint_path(checkpoints, 1), checkpoint_path(checkpoints, 2)
    blob = bytearray(good.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    forged.write_bytes(bytes(blob))
    shutil.copy(_signature_of(good), _signature_of(forged))


class _ResumedAggregator:
    """``fedmpt aggregator start DIR --resume``, run as the lead would, in the foreground."""

    def __init__(self, consortium, log_dir, superlink_python):
        env = flower_env(consortium.flwr_home, PYTHONUNBUFFERED="1")
        self.cli = spawn("aggregator-resume", [sys.executable, "-m", "cli", "aggregator", "start",
                                               str(consortium.root), "--resume",
                                               "--superlink-python", superlink_python],
                         env=env, log_dir=log_dir)

    def stop(self):
        self.cli.stop(timeout=45)  # on SIGTERM it stops its SuperLink and proxy itself
        # If it died before installing its handler, stop what it had started (printed pids).
        for pid in re.findall(r"\(pid (\d+)\)", self.cli.log_path.read_text(errors="replace")):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(pid), signal.SIGKILL)


@pytest.fixture(scope="module")
def federation(tiny_sites):
    with folder_the_superlink_user_reaches() as root:
        yield from _federation(tiny_sites, root)


def _federation(tiny_sites, root):
    superlink_python = superlink_python_for(root)
    consortium = init_consortium(root / "consortium", superlink_port=_free_port(),
                                 fleet_port=_free_port())
    bundles = {name: add_site(consortium, name) for name in SITES}  # registered at start
    fab_hash = snapshot_app(APP_DIR, root / "app")  # freeze what the sites review and run
    for name in ("site-a", "site-b"):
        approve(bundles[name], fab_hash, note="reviewed in test")
    checkpoints = consortium.aggregator_dir / "checkpoints" / RUN
    started, timings, t0 = [], {}, time.monotonic()
    log_dirs = [consortium.aggregator_dir / "logs", root / "lead", *(b / "logs" for b in bundles.values())]

    def logs():
        return sorted(p for d in log_dirs if d.exists() for p in d.glob("*.log"))

    def mark(step):
        timings[step] = round(time.monotonic() - t0, 1)

    try:
        aggregator = start_aggregator(consortium, superlink_user=service_user(DEFAULT_USER),
                                      superlink_python=superlink_python)
        started.append(aggregator)
        sites = {name: start_site(bundles[name], data, runtime_port=_free_port())
                 for name, data in zip(SITES, tiny_sites, strict=True)}
        started.extend(sites.values())
        intruder_key = root / "intruder" / "node_key"
        make_node_key(intruder_key)
        intruder = spawn("intruder", [
            executable("flower-supernode"), "--superlink", consortium.advertised,
            "--root-certificates", str(consortium.ca_cert),
            "--auth-supernode-private-key", str(intruder_key),
            "--isolation", "process", "--host", "127.0.0.1", "--port", str(_free_port()),
        ], env=flower_env(root / "intruder" / "flwr-home"), log_dir=root / "intruder")
        started.append(intruder)
        config = run_config_for(consortium, run_name=RUN, num_rounds=2, strategy="fedadam",
                                model_preset="tiny", local_steps=2, expected_batch_size=4,
                                noise_multiplier=1.0, min_sites=1, round_timeout_s=300.0)
        launched = launch(consortium, config, app_dir=root / "app")
        assert launched.fab_hash == fab_hash
        mark("launched")

        # The aggregator crashes right after checkpointing round 1; a forged round 2 appears.
        _wait_until(lambda: _signature_of(checkpoint_path(checkpoints, 1)).exists(),
                    timeout=60 + PHASE_S, what="the round-1 checkpoint", logs=logs)
        aggregator.kill()
        mark("round 1 checkpointed, aggregator killed")
        _forge_round_2(checkpoints)
        resumed = _ResumedAggregator(consortium, root / "lead", superlink_python)
        started.append(resumed)
        _wait_until(lambda: len(json.loads(launched.record.read_text())["attempts"]) == 2,
                    timeout=RESTART_S, what="`fedmpt aggregator start --resume` to resubmit the run",
                    logs=logs)
        resumed_at = time.time()
        run_id = json.loads(launched.record.read_text())["run_id"]
        mark("run resubmitted")

        # Kill site-b once it has received its round-2 training message (mid-round).
        b_log = sites["site-b"].supernode.log_path
        _wait_until(lambda: b_log.read_text(errors="replace").count("Receiving: train message") >= 2,
                    timeout=RESTART_S + PHASE_S, what="site-b to receive the round-2 train message",
                    logs=logs)
        sites["site-b"].kill()
        mark("site-b killed")

        def finished():
            row = _run_row(consortium)
            return row.get("status") == "completed" or (
                row.get("status") == "failed" and (row.get("finished_at") or 0) > resumed_at)

        _wait_until(finished, timeout=HEARTBEAT_S + 2 * PHASE_S, what=f"run {RUN} to finish", logs=logs)
        row = wait_for(consortium, run_id, timeout=120)
        server_log = run_flwr(["log", str(run_id), CONNECTION, "--show"], flwr_home=consortium.flwr_home)
        mark("run finished")
        print(f"\ndeployment timings (s since start): {timings}")
        yield {"consortium": consortium, "config": config, "row": row, "server_log": server_log,
               "intruder": intruder, "resumed": resumed,
               "fab_hash": fab_hash, "logs": logs, "timings": timings,
               "participation": _store_rows(consortium, lambda s: s.participation(RUN))}
    finally:
        for process in reversed(started):
            process.stop()


def _status(participation, round, phase, site):
    rows = [p for p in participation if (p["round"], p["phase"], p["site"]) == (round, phase, site)]
    return (rows[0]["status"], rows[0]["reason"] or "") if rows else (None, "")


def test_run_completes_and_sites_are_named_by_the_registry(federation):
    assert federation["row"]["status"] == "finished:completed", \
        f"{federation['row']}\n{federation['server_log'][-3000:]}\n{_tails(federation['logs']())}"
    names = {p["site"] for p in federation["participation"]}
    assert names == set(SITES)  # not the self-declared hospital-a/b/c of the site directories
    assert _status(federation["participation"], 1, "train", "site-a")[0] == "ok"
    assert _status(federation["participation"], 2, "evaluate", "site-a")[0] == "ok"


def test_unapproved_app_is_refused_by_that_site_and_the_others_carry_on(federation):
    for round in (1, 2):
        status, reason = _status(federation["participation"], round, "train", "site-c")
        assert status == "failed" and f"{federation['fab_hash']} is not approved" in reason
    assert _status(federation["participation"], 1, "train", "site-b")[0] == "ok"


def test_site_killed_mid_round_does_not_stop_the_round(federation):
    consortium = federation["consortium"]
    status, _ = _status(federation["participation"], 2, "train", "site-b")
    assert status == "failed"
    assert _status(federation["participation"], 2, "train", "site-a")[0] == "ok"
    key = load_public_key(consortium.signing_key.with_suffix(".pub"))
    state = load_signed_checkpoint(checkpoint_path(consortium.aggregator_dir / "checkpoints" / RUN, 2), key)
    assert [p["site"] for p in state["participation"] if p["status"] == "ok"] == ["site-a"]


class _SiteDownFromRound2(InProcessGrid):
    """The deployment's participation in process: the second site fails from round 2 on."""

    def deliver(self, message):
        if (message.metadata.dst_node_id == self.get_node_ids()[1]
                and int(message.content["config"]["server-round"]) >= 2):
            return Message(Error(code=5, reason="Node Unavailable"), reply_to=message)
        return super().deliver(message)


def test_aggregator_killed_after_round_1_resumes_from_its_checkpoint_with_fresh_noise(
        federation, tiny_sites, tmp_path, monkeypatch):
    # Prepare: the same run, uninterrupted, with the real ServerApp and ClientApp code in this
    # process (site-a and site-b; site-b lost from round 2 on, site-c's refusals add nothing)
    for name in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, name, 1)  # messages built outside a Flower runtime
    reference = dataclasses.replace(federation["config"], workdir=str(tmp_path), run_name="reference",
                                    signing_key="", site_registry="")
    key = load_or_create_signing_key(reference.signing_key_path)
    public_key = reference.signing_key_path.with_suffix(".pub")  # what the sites pin
    run_rounds(_SiteDownFromRound2(tiny_sites[:2], aggregator_key=public_key), reference)
    consortium = federation["consortium"]

    # Execute
    straight = load_signed_checkpoint(checkpoint_path(reference.checkpoint_dir, 2), key.public_key())
    resumed = load_signed_checkpoint(checkpoint_path(consortium.aggregator_dir / "checkpoints" / RUN, 2),
                                     load_public_key(consortium.signing_key.with_suffix(".pub")))

    # Assert: the resumed run completed round 2 from round 1's signed checkpoint; its noise is
    # the sites' own, so its weights differ from the uninterrupted run's
    assert resumed["round"] == straight["round"] == 2
    assert resumed["arrays_digest"] != straight["arrays_digest"]
    assert set(resumed["strategy_state"]) == {"m_t", "v_t"}  # FedAdam moments came back too
    seen = [(p["round"], p["phase"], p["site"]) for p in federation["participation"]]
    assert len(seen) == len(set(seen))  # each round recorded once across the two attempts
    ledger = PrivacyLedger(SiteLayout(tiny_sites[0]).ledger_path)  # site-a, which trained both rounds
    rounds = [e["round"] for e in ledger.entries if e["event"] == "segment_started" and e["run_id"] == RUN]
    assert rounds == [1, 2]  # round 1 not trained again after the crash; each round charged once


def test_forged_newer_checkpoint_is_refused_and_the_previous_one_used(federation):
    log = federation["server_log"]  # the resumed ServerApp's, from `flwr log RUN_ID --show`

    assert re.search(r"refusing checkpoint: round_0002\.pt: SHA-256 \w+\.\.\. does not match the "
                     r"signed \w+\.\.\.; the file is truncated or was modified", log)
    assert "continuing run deploy after round 1 from round_0001.pt (1 newer checkpoint(s) refused)" in log


def test_unregistered_node_is_refused(federation):
    intruder = federation["intruder"]
    _wait_until(lambda: not intruder.alive(), timeout=120, what="the unregistered node to give up",
                logs=lambda: [intruder.log_path])
    log = intruder.log_path.read_text(errors="replace")
    # Flower logs exit code 305 ("[code: 2004] Failed to activate SuperNode"); the process
    # itself exits 1 once its local runtime API has shut down.
    assert intruder.popen.returncode != 0
    assert "Exit Code: 305" in log and "[code: 2004] Failed to activate SuperNode" in log


def test_control_api_and_docs_are_refused_through_the_proxy(federation):
    consortium = federation["consortium"]
    proxy = f"https://127.0.0.1:{consortium.fleet_port}"
    direct = f"https://{consortium.superlink_address}"
    with httpx.Client(verify=str(consortium.ca_cert), timeout=30) as client:
        assert client.post(f"{proxy}/v1/control/list-runs", content=b"").status_code == 403
        assert client.get(f"{proxy}/docs").status_code == 403
        assert client.post(f"{proxy}/v1/runtime/acquire-task", content=b"").status_code == 403
        # The SuperLink itself would answer them: only loopback users on the aggregator host.
        assert client.get(f"{direct}/docs").status_code == 200


def test_superlink_runs_as_its_own_user_and_cannot_read_the_ca_or_signing_key(federation):
    consortium = federation["consortium"]
    log = federation["resumed"].cli.log_path.read_text(errors="replace")  # `fedmpt aggregator start`
    superlink_pid = int(re.search(r"SuperLink on \S+ \(pid (\d+)\)", log)[1])
    superexec_pid = int(re.search(r"SuperExec \(pid (\d+)\)", log)[1])
    user = pwd.getpwnam(DEFAULT_USER)

    uid = uid_of(superlink_pid)
    opened = opens_as(uid, user.pw_gid, [consortium.ca_key, consortium.signing_key,
                                          consortium.server_key, consortium.database])

    assert uid == user.pw_uid != os.geteuid()
    assert uid_of(superexec_pid) == os.geteuid()  # the ServerApp, which signs, runs as the lead
    assert opened == {consortium.ca_key: False, consortium.signing_key: False,
                      consortium.server_key: True, consortium.database: True}
