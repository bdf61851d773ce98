"""The dashboard as a person sees it, through :func:`dashboard.screenshots.shoot_all`: served on
loopback, logged into through the form, in headless Chromium (Debian's ``chromium`` package,
driven by playwright-python; no browser is downloaded). The screenshots of the test data go to
``$FEDMPT_SCREENSHOTS_DIR`` when set (to look at them), else to the test's temp folder; the
README's come from a real run (``make screenshots``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dashboard.screenshots import SHOTS, main, shoot_all


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return Path(os.environ.get("FEDMPT_SCREENSHOTS_DIR") or tmp_path / "screenshots")


def test_dashboard_in_headless_chromium(
    full_workdir: Path, site_dir: Path, password: str, sites: list[str], shots: Path
) -> None:
    seen = shoot_all(full_workdir, site_dir, shots, lead=("lee", password), clinician=("ana", password))

    # Not logged in: the login form only, and a wrong password gets nowhere
    assert "Unknown user name or wrong password." in seen["login"].text
    assert "hospital-a" not in seen["login"].text
    # every site with its epsilon spent / budget, as drawn
    privacy = seen["privacy"].text
    for site, tile in zip(sites, ["ε 2.50 / 4.00", "ε 0.80 / 1.10", "ε 0.70 / 1.00"], strict=True):
        assert site in privacy and tile in privacy, privacy[:2000]
    assert {name: seen[name].charts for name in ("sites", "privacy", "data-quality", "results")} == {
        "sites": 1, "privacy": 2, "data-quality": 3, "results": 4}
    assert "Logged in as ana" in seen["case-viewer"].text
    for name in SHOTS:
        assert (shots / f"{name}.png").stat().st_size > 10_000, name


def test_command_refuses_a_workdir_without_results_before_adding_accounts(
    empty_workdir: Path, site_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    users = (empty_workdir / "aggregator" / "dashboard_users.json").read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        main(["--workdir", str(empty_workdir), "--site", str(site_dir), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 1 and "run make demo first" in capsys.readouterr().err
    assert (empty_workdir / "aggregator" / "dashboard_users.json").read_bytes() == users
    assert not (tmp_path / "out").exists()
