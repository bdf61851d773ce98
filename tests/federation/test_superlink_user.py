"""``fedmpt aggregator start`` fails closed when it cannot give the SuperLink its own user."""

import os
import socket
import stat

from typer.testing import CliRunner

from cli.main import app
from federation.deploy.consortium import init_consortium
from federation.deploy.processes import start_aggregator
from federation.deploy.superlink_user import SuperLinkUserError, readable_as, service_user
from superlink_user_helpers import folder_the_superlink_user_reaches, opens_as, superlink_python_for, uid_of


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_superlink_runs_as_its_own_user_and_cannot_open_the_lead_keys():
    user = service_user()  # created when missing; this fails (no skip) where that is impossible
    with folder_the_superlink_user_reaches() as root:
        consortium = init_consortium(root / "consortium", superlink_port=_free_port(),
                                     fleet_port=_free_port())
        aggregator = start_aggregator(consortium, superlink_user=user,
                                      superlink_python=superlink_python_for(root))
        try:
            superlink_uid, superexec_uid = uid_of(aggregator.superlink.pid), uid_of(aggregator.superexec.pid)
            opened = opens_as(superlink_uid, user.gid, [consortium.ca_key, consortium.signing_key,
                                                         consortium.server_key, consortium.database])
        finally:
            aggregator.stop()

    assert superlink_uid == user.uid != os.geteuid()
    assert superexec_uid == os.geteuid()  # the ServerApp, which signs, runs as the lead
    assert opened == {consortium.ca_key: False, consortium.signing_key: False,
                      consortium.server_key: True, consortium.database: True}


def test_not_root_refuses_without_same_user_and_names_the_way_out(tmp_path, monkeypatch):
    consortium = init_consortium(tmp_path / "cons", superlink_port=9, fleet_port=10)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # a lead's ordinary login

    result = CliRunner().invoke(app, ["aggregator", "start", str(consortium.root)])

    assert result.exit_code == 2
    assert "cannot be started as user 'fedmpt-superlink'" in result.output
    assert "--same-user" in result.output and "Traceback" not in result.output


def test_root_cannot_be_the_superlink_user():
    try:
        service_user("root", create=False)
    except SuperLinkUserError as e:
        assert "not a separate unprivileged user" in str(e)
    else:
        raise AssertionError("root accepted as the SuperLink's user")


def test_an_interpreter_the_user_cannot_run_is_named(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    python = private / "python"
    python.write_text("#!/bin/sh\n")
    python.chmod(stat.S_IRWXU)

    try:
        readable_as(service_user(), [tmp_path], python=str(python))
    except SuperLinkUserError as e:
        assert str(python) in str(e) and "--superlink-python" in str(e)
    else:
        raise AssertionError("a probe ran with an interpreter its user cannot execute")
