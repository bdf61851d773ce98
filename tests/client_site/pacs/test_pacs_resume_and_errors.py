"""A pull that is interrupted resumes, a study deleted mid-pull is reported and retried, and every
connection problem is one clear line with its exit code (no traceback, no password)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from orthanc_server import PASSWORD, Orthanc, free_port
from pacs_helpers import Uploaded, expected, pulled_files
from typer.testing import CliRunner

import client_site.pacs.pull as pull_module
from cli.main import app
from client_site.pacs import load_pacs_config, pull_site
from client_site.pacs.pull import open_source, retrieve_studies

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_interrupted_pull_resumes_without_fetching_again(
    make_pacs_site: Callable[..., Path], uploaded: list[Uploaded], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare: the 30th write is interrupted (as by Ctrl-C or a killed process)
    site_dir = make_pacs_site("dicomweb", study_date_from="20231201")
    want = expected(uploaded, since="20231201")
    real_write, calls = pull_module.write_bytes_atomic, []

    def interrupted(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 30:
            raise KeyboardInterrupt
        real_write(path, data)

    monkeypatch.setattr(pull_module, "write_bytes_atomic", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pull_site(site_dir, load_pacs_config(site_dir), progress=False)
    monkeypatch.setattr(pull_module, "write_bytes_atomic", real_write)
    # Execute
    result = pull_site(site_dir, load_pacs_config(site_dir), progress=False)
    # Assert: only the 29 written before the interruption are not fetched again
    assert result.instances_retrieved == len(want) - 29 and not result.failures
    assert sorted(p.read_bytes() for p in pulled_files(site_dir)) == sorted(u.path.read_bytes() for u in want)
    assert not list(site_dir.rglob("*.tmp"))


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_study_deleted_mid_pull_is_reported_and_retried(
    make_pacs_site: Callable[..., Path], uploaded: list[Uploaded], orthanc: Orthanc, protocol: str,
) -> None:
    # Prepare: the query has run; then one study disappears from the PACS
    site_dir = make_pacs_site(protocol, study_date_from="20240101", series_description="10mm")
    config = load_pacs_config(site_dir)
    source = open_source(config, site_dir)
    studies = source.find_studies()
    gone = studies[-1].study_uid
    (match,) = orthanc.rest("POST", "/tools/lookup", data=gone).json()
    orthanc.rest("DELETE", f"/studies/{match['ID']}")
    try:
        # Execute
        result = retrieve_studies(site_dir, source, studies, config=config, progress=False)
    finally:
        source.close()
        for item in uploaded:
            if item.study_uid == gone:
                orthanc.upload(item.path)
    # Assert: the others arrived; the deleted one is listed with the reason and retried by the next pull
    assert len(result.failures) == 1 and "no CT instance" in result.failures[0].error
    assert result.studies_retrieved + result.studies_not_matching == len(studies) - 1
    retried = pull_site(site_dir, config, progress=False)
    assert not retried.failures and retried.studies_retrieved == 1
    want = expected(uploaded, since="20240101", description="10mm")
    assert len(pulled_files(site_dir)) == len(want)


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output  # standard output and error


@pytest.mark.parametrize(("protocol", "settings", "code", "says"), [
    ("dicomweb", {"password": "wrong password"}, 7, "refused the credentials (HTTP 401)"),
    ("dimse", {"called_aet": "NOTTHEPACS"}, 7, "check [pacs] called_aet (NOTTHEPACS)"),
    ("dimse", {"calling_aet": "STRANGER"}, 7, "registers this site as STRANGER"),
    ("dicomweb", {"url": f"http://127.0.0.1:{free_port()}/dicom-web"}, 6, "cannot reach the PACS"),
    ("dimse", {"port": free_port()}, 6, "cannot reach the PACS"),
])
@pytest.mark.parametrize("command", ["pull", "check"])
def test_connection_problems_are_one_clear_line(
    make_pacs_site: Callable[..., Path], protocol: str, settings: dict[str, object], code: int, says: str,
    command: str,
) -> None:
    site_dir = make_pacs_site(protocol, **settings)
    exit_code, output = _cli("site", command, str(site_dir), *(["--no-ingest"] if command == "pull" else []))
    assert exit_code == code, output
    assert says in output and "Traceback" not in output
    assert str(settings.get("password", PASSWORD)) not in output
    assert not (site_dir / "dicom" / "pacs").exists()


def test_check_verifies_without_retrieving(make_pacs_site: Callable[..., Path], orthanc: Orthanc) -> None:
    for protocol, says in (("dicomweb", "QIDO-RS search"), ("dimse", "C-ECHO")):
        site_dir = make_pacs_site(protocol)
        exit_code, output = _cli("site", "check", str(site_dir))
        assert exit_code == 0 and "ok: " in output and says in output, output
        assert not (site_dir / "dicom" / "pacs").exists() and not (site_dir / "pacs").exists()


def test_secret_must_be_private_and_never_in_site_toml(make_pacs_site: Callable[..., Path]) -> None:
    site_dir = make_pacs_site("dicomweb")
    (site_dir / "secrets" / "pacs-password").chmod(0o644)
    exit_code, output = _cli("site", "check", str(site_dir))
    assert exit_code == 5 and "chmod 600" in output
    (site_dir / "secrets" / "pacs-password").chmod(0o600)
    toml = site_dir / "site.toml"
    toml.write_text(toml.read_text() + f'password = "{PASSWORD}"\n')
    exit_code, output = _cli("site", "check", str(site_dir))
    assert exit_code == 5 and "remove [pacs] password" in output and PASSWORD not in output


def test_flags_override_the_table(make_pacs_site: Callable[..., Path], orthanc: Orthanc) -> None:
    site_dir = make_pacs_site("dicomweb", url=f"http://127.0.0.1:{free_port()}/dicom-web")
    exit_code, output = _cli("site", "check", str(site_dir), "--dimse", f"127.0.0.1:{orthanc.dicom_port}",
                             "--called-aet", "TESTPACS")
    assert exit_code == 0 and "C-ECHO" in output, output
