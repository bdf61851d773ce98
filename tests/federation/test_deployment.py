"""A real federation on loopback: separate processes, TLS, node authentication, the Fleet proxy.

One module-scoped consortium: the SuperLink (TLS, ``--enable-supernode-auth``, persistent
database, 127.0.0.1) behind the Fleet proxy, three SuperNodes as separate processes (each with
its gated executor) and a 2-round run of the tiny preset. site-c has not approved the app;
site-b is killed in the middle of round 2; an unregistered node tries to join.
"""

import socket
import time

import httpx
import pytest

from aggregator.checkpoints import checkpoint_path, load_signed_checkpoint
from aggregator.results_store import ResultsStore
from aggregator.signing import load_public_key
from federation.deploy.approval import approve
from federation.deploy.consortium import add_site, init_consortium
from federation.deploy.flower_cli import executable, flower_env
from federation.deploy.pki import make_node_key
from federation.deploy.processes import spawn, start_aggregator, start_site
from federation.deploy.rounds import APP_DIR, launch, run_config_for, snapshot_app, wait_for

SITES = ("site-a", "site-b", "site-c")  # registry names; the data dirs call themselves hospital-*

# Several real processes (SuperLink, proxy, 3 SuperNodes) for minutes: run with `make integration`.
# Deselected from `make test`: on this 2-core machine under load it timed out (see the closing note).
pytestmark = pytest.mark.integration



def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until(predicate, *, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise TimeoutError(f"gave up waiting for {what} after {timeout} s")


def _participation(consortium, run_name):
    path = consortium.aggregator_dir / "results.sqlite"
    if not path.exists():
        return []
    store = ResultsStore(path, read_only=True)
    try:
        return store.participation(run_name)
    except Exception:  # noqa: BLE001  (the ServerApp has not created the tables yet)
        return []
    finally:
        store.close()


@pytest.fixture(scope="module")
def federation(tiny_sites, tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    consortium = init_consortium(root / "consortium", superlink_port=_free_port(),
                                 fleet_port=_free_port())
    bundles = {name: add_site(consortium, name) for name in SITES}  # registered at start
    fab_hash = snapshot_app(APP_DIR, root / "app")  # freeze what the sites review and run
    for name in ("site-a", "site-b"):
        approve(bundles[name], fab_hash, note="reviewed in test")
    started = []
    try:
        aggregator = start_aggregator(consortium)
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

        config = run_config_for(consortium, run_name="deploy", num_rounds=2, model_preset="tiny",
                                local_steps=2, expected_batch_size=4, noise_multiplier=1.0,
                                min_sites=2, round_timeout_s=300.0)
        launched = launch(consortium, config, app_dir=root / "app")
        assert launched.fab_hash == fab_hash

        # Kill site-b once it has received its round-2 training message (mid-round).
        b_log = sites["site-b"].supernode.log_path
        _wait_until(lambda: b_log.read_text(errors="replace").count("Receiving: train message") >= 2,
                    timeout=600, what="site-b to receive the round-2 train message")
        sites["site-b"].kill()
        row = wait_for(consortium, launched.run_id, timeout=600)
        yield {"consortium": consortium, "row": row, "intruder": intruder, "fab_hash": fab_hash,
               "participation": _participation(consortium, "deploy")}
    finally:
        for process in reversed(started):
            process.stop()


def _status(participation, round, phase, site):
    rows = [p for p in participation if (p["round"], p["phase"], p["site"]) == (round, phase, site)]
    return (rows[0]["status"], rows[0]["reason"] or "") if rows else (None, "")


def test_run_completes_and_sites_are_named_by_the_registry(federation):
    assert federation["row"]["status"] == "finished:completed", federation["row"]
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
    state = load_signed_checkpoint(checkpoint_path(consortium.aggregator_dir / "checkpoints" / "deploy", 2), key)
    assert [p["site"] for p in state["participation"] if p["status"] == "ok"] == ["site-a"]


def test_unregistered_node_is_refused(federation):
    intruder = federation["intruder"]
    _wait_until(lambda: not intruder.alive(), timeout=120, what="the unregistered node to give up")
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
