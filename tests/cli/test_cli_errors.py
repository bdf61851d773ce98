"""Every documented command, given a broken input, says what is wrong in a line or two, no traceback.

Commands run in this process through the real ``fedmpt`` app; exit codes are those of
:mod:`cli.errors` (3 missing, 4 exists, 5 invalid value, 6 server unreachable).
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.main import app
from federation.deploy.consortium import add_site, init_consortium

FAB = "ab" * 32  # a well-formed SHA-256


@pytest.fixture(scope="module")
def consortium(tmp_path_factory):
    """A consortium directory whose SuperLink is not running (nothing listens on its port)."""
    root = tmp_path_factory.mktemp("cli-errors")
    consortium = init_consortium(root / "cons", superlink_port=9, fleet_port=10)
    add_site(consortium, "hospital-a")
    return consortium


def _cases(cons: str, missing: str) -> list[tuple[list[str], int, str]]:
    """(arguments, exit code, text the message must contain)."""
    return [
        (["rounds", "status", missing], 3, "consortium.toml is missing"),
        (["rounds", "start", cons, "--rounds", "1"], 6, "does not answer"),
        (["rounds", "results", missing], 3, "no results store"),
        (["rounds", "abort", cons, "--run", "r1"], 6, "does not answer"),
        (["sites", cons], 6, "fedmpt aggregator start"),
        (["aggregator", "start", missing], 3, "fedmpt consortium init"),
        (["consortium", "init", cons], 4, "initialised once"),
        (["consortium", "add-site", cons, "hospital-b", "--public-key", f"{missing}/node_key.pub"], 3,
         "node_key.pub: no such file"),
        (["consortium", "add-site", cons, "Hospital B"], 5, "lower-case letters"),
        (["consortium", "revoke-site", cons, "nobody"], 5, "no site 'nobody'"),
        (["site", "approve", FAB, "--bundle", f"{missing}/bundle"], 3, "is not a site bundle"),
        (["site", "approve", "abc", "--bundle", f"{cons}/sites/hospital-a"], 5, "64-hex-digit"),
        (["site", "start", f"{cons}/sites/hospital-a", "--data", missing], 3, "nosuch does not exist"),
        (["site", "init", missing, "--name", "x", "--epsilon", "-1"], 5, "epsilon budget"),
        (["site", "check", missing, "--bundle", f"{cons}/sites/hospital-a"], 3, "nosuch does not exist"),
        (["ingest", missing, "--preset", "tiny"], 5, "does not exist"),
        (["ingest", missing, "--preset", "huge"], 5, "unknown model preset"),
        (["federate", missing, "--rounds", "1"], 3, "not a site directory"),
        (["federate", missing, "--strategy", "fedsgd"], 5, "strategy must be one of"),
        (["privacy", "ledger", missing], 3, "site.toml is missing"),
        (["privacy", "estimate", "--sample-rate", "2", "--noise-multiplier", "1", "--steps", "3"], 5,
         "sample_rate"),
        (["audit", "mia", "--workdir", missing], 3, "no results store"),
        (["dashboard", "--workdir", missing], 3, "--workdir"),
        (["report", "draft", "--site", missing, "--all"], 3, "--model WEIGHTS"),
        (["experiment", "compare", "--workdir", missing, "--end-to-end", "--ssl-probe-rounds", "2"], 5,
         "drop --end-to-end"),
    ]


@pytest.mark.parametrize("case", range(len(_cases("c", "m"))))
def test_broken_input_gives_a_short_message_and_its_exit_code(case, consortium, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the CLI points FLWR_HOME at ./.flwr
    args, code, text = _cases(str(consortium.root), str(tmp_path / "nosuch"))[case]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == code, result.output
    assert text in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 3, result.output


def test_failed_launch_leaves_no_run_behind(consortium, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from federation.deploy.rounds import launch, run_config_for

    with pytest.raises(Exception, match="flwr run"):
        launch(consortium, run_config_for(consortium, run_name="never", model_preset="tiny"))

    assert not list(consortium.runs_dir.glob("never*"))
    assert not [p for p in consortium.runs_dir.iterdir() if p.name.startswith(".app-")]


def test_verbose_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["--verbose", "rounds", "status", str(tmp_path / "nosuch")])
    assert result.exit_code == 3 and "Traceback" in result.output


def test_site_check_names_the_unreachable_superlink(consortium, make_site, tmp_path, monkeypatch):
    # Prepare: a site that is ready in every respect, but nothing listens at its bundle's address
    site = make_site(epsilon=8.0)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["site", "check", str(site),
                                      "--bundle", str(consortium.bundle_dir("hospital-a"))])
    assert result.exit_code == 6, result.output
    assert "ok  cache:" in result.output and "ok  approved app bundles: 0" in result.output
    assert f"cannot reach the SuperLink at {consortium.advertised}" in result.output
    assert "Traceback" not in result.output


def test_a_run_that_failed_its_quorum_is_reported_as_such_not_as_a_bug():
    from aggregator.quorum import QuorumNotMet
    from cli.errors import as_cli_error

    error = as_cli_error(QuorumNotMet(1, 0, 2))

    assert error is not None and error.exit_code == 1
    assert "round 1: 0 of the required 2 site(s) trained" in error.message


def test_a_halted_secure_aggregation_round_is_reported_as_a_failed_run_not_as_a_bug():
    from aggregator.quorum import SecureAggregationHalted
    from cli.errors import as_cli_error

    error = as_cli_error(SecureAggregationHalted("round 2: secure aggregation halted before aggregating"))

    assert error is not None and error.exit_code == 1
    assert "the run failed: round 2: secure aggregation halted" in error.message


def test_demo_refuses_an_unknown_preset_before_generating_the_consortium(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    workdir = tmp_path / "demo"

    result = CliRunner().invoke(app, ["demo", "--workdir", str(workdir), "--sites", "2", "--patients", "8",
                                      "--preset", "huge"])

    assert result.exit_code == 5 and "unknown model preset 'huge'" in result.output, result.output
    assert not workdir.exists()  # nothing generated for a demo that cannot run
