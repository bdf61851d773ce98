"""The dashboard as a person sees it: served on loopback, logged into through the form, in
headless Chromium (Debian's ``chromium`` package, driven by playwright-python; no browser is
downloaded). One screenshot per page goes to ``$FEDMPT_SCREENSHOTS_DIR`` (``docs/screenshots``
to refresh the README's) or, by default, to the test's temp folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
STARTUP_TIMEOUT_S = 30.0
WAIT_MS = 20_000


def _require_browser() -> None:
    """Skip without Chromium or playwright on a developer's machine; fail in CI (CI=true)."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[dev]')")
    if not Path(CHROMIUM).exists():
        missing.append("chromium (apt-get install -y chromium)")
    if missing:
        message = "the browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _serve(call: str, target: Path) -> Iterator[str]:
    """Run ``dashboard.launch.<call>(target, port=...)`` in a subprocess; yield its URL."""
    port = _free_port()
    code = (f"import sys; from pathlib import Path; from dashboard.launch import {call}; "
            f"sys.exit({call}(Path({str(target)!r}), port={port}))")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(url + "_stcore/health", timeout=2):  # noqa: S310 - loopback
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"the dashboard did not start on {url}") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()  # launch() passes SIGTERM on to Streamlit
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _settle(page: object) -> None:
    """Wait until Streamlit has finished the script run and the charts have drawn."""
    page.wait_for_function(  # type: ignore[attr-defined]
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"] [data-testid=\"stStatusWidgetRunningIcon\"]')",
        timeout=WAIT_MS,
    )
    page.wait_for_timeout(700)  # type: ignore[attr-defined]  # vega-lite draws after the run


def _login(page: object, url: str, name: str, password: str, shots: Path | None = None) -> None:
    page.goto(url)  # type: ignore[attr-defined]
    page.get_by_label("User name").fill(name)  # type: ignore[attr-defined]
    page.get_by_label("Password", exact=True).fill(password)  # type: ignore[attr-defined]
    if shots is not None:
        page.screenshot(path=str(shots / "login.png"))  # type: ignore[attr-defined]
    page.get_by_role("button", name="Log in").click()  # type: ignore[attr-defined]


def _heading(page: object, text: str) -> None:
    page.get_by_role("heading", name=text).first.wait_for(timeout=WAIT_MS)  # type: ignore[attr-defined]
    _settle(page)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("FEDMPT_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_dashboard_in_headless_chromium(
    full_workdir: Path, site_dir: Path, password: str, sites: list[str], shots: Path, tmp_path: Path
) -> None:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with _serve("launch", full_workdir) as url, _serve("launch_site", site_dir) as site_url, \
            sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 1000},
        )
        try:
            page = context.new_page()

            # Not logged in: the login form, nothing else
            _login(page, url, "lee", "wrong-password")
            page.get_by_text("Unknown user name or wrong password.").wait_for(timeout=WAIT_MS)
            assert "hospital-a" not in page.inner_text("body")

            # Log in through the form as the lead
            _login(page, url, "lee", password, shots)
            _heading(page, "Overview")
            page.screenshot(path=str(shots / "overview.png"), full_page=True)

            pages = [("Per-site metrics", "Per-site metrics", "sites.png"),
                     ("Privacy", "Privacy budget", "privacy.png"),
                     ("Data quality", "Data quality", "data-quality.png"),
                     ("Results", "Results", "results.png")]
            for link, heading, shot in pages:
                page.get_by_role("link", name=link).click()
                _heading(page, heading)
                if link == "Privacy":
                    body = page.inner_text("body")
                    # every site with its epsilon spent / budget, as drawn
                    for site, tile in zip(sites, ["ε 2.50 / 4.00", "ε 0.80 / 1.10", "ε 0.70 / 1.00"],
                                          strict=True):
                        assert site in body and tile in body, body[:2000]
                page.screenshot(path=str(shots / shot), full_page=True)

            # The site-local case viewer, as the site's clinician
            _login(page, site_url, "ana", password)
            _heading(page, "Case viewer: hospital-a")
            page.get_by_text("Drafted report").wait_for(timeout=WAIT_MS)
            page.screenshot(path=str(shots / "case-viewer.png"), full_page=True)
        finally:
            context.close()

    for name in ("login", "overview", "sites", "privacy", "data-quality", "results", "case-viewer"):
        assert (shots / f"{name}.png").stat().st_size > 10_000, name
