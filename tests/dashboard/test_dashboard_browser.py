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
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
VIEWPORT = {"width": 1400, "height": 1000}
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
STARTUP_TIMEOUT_S = 30.0
WAIT_MS = 20_000


def _require_browser() -> None:
    """Fail with the install hint when Chromium or playwright is missing (`make test` installs both)."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[dev]')")
    if not Path(CHROMIUM).exists():
        missing.append("chromium (apt-get install -y chromium)")
    if missing:
        pytest.fail("the browser test needs " + " and ".join(missing))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _serving(*targets: tuple[str, Path]) -> Iterator[list[str]]:
    """Run ``dashboard.launch.<call>(target, port=...)`` for each target in a subprocess.

    The servers start side by side (and beside the browser, which starts while the caller
    waits for them with :func:`_wait_until_up`); every one is stopped with SIGTERM at exit.
    """
    processes, urls = [], []
    try:
        for call, target in targets:
            port = _free_port()
            code = (f"import sys; from pathlib import Path; from dashboard.launch import {call}; "
                    f"sys.exit({call}(Path({str(target)!r}), port={port}))")
            processes.append(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
            urls.append(f"http://127.0.0.1:{port}/")
        yield urls
    finally:
        for process in processes:
            process.terminate()  # launch() passes SIGTERM on to Streamlit
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_up(url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(url + "_stcore/health", timeout=2):  # noqa: S310 - loopback
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not start on {url}") from None
            time.sleep(0.2)


def _login(page: Page, name: str, password: str) -> None:
    """Fill in and send the login form of the page that is open."""
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def _open(page: Page, heading: str, charts: int = 0) -> None:
    """Wait for the page's heading, for its widgets and images, and for ``charts`` charts."""
    page.get_by_role("heading", name=heading).first.wait_for(timeout=WAIT_MS)
    # Streamlit draws a skeleton until a widget's code has loaded; charts paint after the run.
    page.wait_for_function(
        "n => !document.querySelector('[data-testid=\"stSkeleton\"]')"
        " && [...document.images].every(i => i.complete && i.naturalWidth > 0)"
        " && document.querySelectorAll('[data-testid=\"stVegaLiteChart\"] canvas,"
        " [data-testid=\"stVegaLiteChart\"] svg.marks').length >= n",
        arg=charts,
        timeout=WAIT_MS,
    )
    page.wait_for_timeout(300)  # let the last elements of the run paint


def _shoot(page: Page, path: Path) -> None:
    """Screenshot the whole page: Streamlit scrolls inside its main block, not the document."""
    for _ in range(2):  # a taller viewport can reflow the page once
        height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": VIEWPORT["width"],
                                "height": max(VIEWPORT["height"], min(int(height), 3200))})
        page.wait_for_timeout(200)
    page.screenshot(path=str(path))
    page.set_viewport_size(VIEWPORT)


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

    targets = [("launch", full_workdir), ("launch_site", site_dir)]
    with _serving(*targets) as (url, site_url), sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS, viewport=VIEWPORT,
        )
        try:
            page = context.new_page()
            _wait_until_up(url)

            # Not logged in: the login form only, and a wrong password gets nowhere
            page.goto(url)
            page.get_by_role("button", name="Log in").wait_for(timeout=WAIT_MS)
            _open(page, "FedMPT dashboard")
            page.screenshot(path=str(shots / "login.png"))
            _login(page, "lee", "wrong-password")
            page.get_by_text("Unknown user name or wrong password.").wait_for(timeout=WAIT_MS)
            assert "hospital-a" not in page.inner_text("body")

            # Log in through the form as the lead, then open every page from the sidebar
            _login(page, "lee", password)
            _open(page, "Overview")
            _shoot(page, shots / "overview.png")
            for link, heading, charts, shot in [("Per-site metrics", "Per-site metrics", 1, "sites.png"),
                                                ("Privacy", "Privacy budget", 2, "privacy.png"),
                                                ("Data quality", "Data quality", 3, "data-quality.png"),
                                                ("Results", "Results", 3, "results.png")]:
                page.get_by_role("link", name=link).click()
                _open(page, heading, charts)
                if link == "Privacy":
                    body = page.inner_text("body")
                    # every site with its epsilon spent / budget, as drawn
                    for site, tile in zip(sites, ["ε 2.50 / 4.00", "ε 0.80 / 1.10", "ε 0.70 / 1.00"],
                                          strict=True):
                        assert site in body and tile in body, body[:2000]
                _shoot(page, shots / shot)

            # The site-local case viewer, as the site's clinician
            _wait_until_up(site_url)
            page.goto(site_url)
            _login(page, "ana", password)
            _open(page, "Case viewer: hospital-a")
            page.get_by_role("button", name="Accept report").wait_for(timeout=WAIT_MS)
            _shoot(page, shots / "case-viewer.png")
        finally:
            context.close()

    for name in ("login", "overview", "sites", "privacy", "data-quality", "results", "case-viewer"):
        assert (shots / f"{name}.png").stat().st_size > 10_000, name
