"""``fedmpt aggregator start`` fails closed when it cannot give the SuperLink its own user."""

import os
import stat

from typer.testing import CliRunner

from cli.main import app
from federation.deploy.consortium import init_consortium
from federation.deploy.superlink_user import SuperLinkUserError, readable_as, service_user


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
