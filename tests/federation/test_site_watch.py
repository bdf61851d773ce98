"""`fedmpt site start`'s running commentary, from the SuperNode's and executor's log lines."""

from federation.deploy.site_watch import SiteWatch


def _append(path, *lines):
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(f"{line}\n" for line in lines))


def test_connection_refusal_and_training_become_one_line_each(tmp_path):
    supernode, executor = tmp_path / "supernode.log", tmp_path / "executor.log"
    _append(supernode, "INFO :      SuperNode ID: 7 (an earlier start: not shown again)")
    ledger = {"state": (0.5, {"run_id": "old", "round": 3})}
    watch = SiteWatch("site-a", supernode, executor, lambda: ledger["state"],
                      offsets={supernode: supernode.stat().st_size})
    _append(supernode, "WARNING :   Connection attempt failed, retrying in 2.00 seconds",
            "INFO :      SuperNode ID: 42")
    assert watch.poll() == ["cannot reach the SuperLink yet; retrying (fedmpt site check tells why)",
                            "connected as site-a (node 42)"]

    _append(supernode, "INFO :      [RUN 99]", "INFO :      Receiving: train message (ID: a)")
    _append(executor, "ClientAppException: Message: app bundle abc is not approved by this site'>")
    _append(supernode, "INFO :      Sending: train message (ID: b)")
    assert watch.poll() == ["run 99 train: refused: app bundle abc is not approved by this site, "
                            "epsilon after 0.500"]

    _append(supernode, "INFO :      [RUN 100]", "INFO :      Receiving: train message (ID: c)")
    watch.poll()
    ledger["state"] = (0.9, {"run_id": "nightly", "round": 2})
    _append(supernode, "INFO :      Sending: train message (ID: d)",
            "INFO :      [RUN 100]", "INFO :      Receiving: evaluate message (ID: e)",
            "INFO :      Sending: evaluate message (ID: f)")
    assert watch.poll() == ["run nightly round 2 train: trained, epsilon after 0.900",
                            "run 100 evaluate: evaluated, epsilon after 0.900"]
