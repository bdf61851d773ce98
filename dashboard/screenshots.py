"""One screenshot per dashboard page, taken in headless Chromium from a real workdir.

``python -m dashboard.screenshots --workdir DIR --site SITE_DIR --out docs/screenshots`` (or
``make screenshots``) serves the consortium dashboard over ``DIR`` and the case viewer over
``SITE_DIR`` on loopback, logs in through their forms as a person would, opens every page and
writes ``login``, ``overview``, ``sites``, ``privacy``, ``data-quality``, ``results`` and
``case-viewer`` ``.png`` to the output folder.

Users: the command logs in with two throwaway accounts, a lead and a clinician of the site,
with random passwords that are never shown; they exist in the workdir's and the site's users
files only while it runs and are removed when it ends, every other user left as it was (see
:mod:`dashboard.screenshot_accounts`). Nothing else is written to either folder: no report is
accepted. :func:`shoot_all` itself logs in with the accounts it is given, as the browser test
does with its own users.

The browser is Debian's ``chromium`` (``make browser``), driven by playwright-python; no
browser is downloaded.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dashboard.screenshot_accounts import throwaway_accounts
from dashboard.workdir import store_path

if TYPE_CHECKING:
    from playwright.sync_api import Page

__all__ = ["CHROMIUM", "CONSORTIUM_PAGES", "SHOTS", "Shot", "main", "shoot_all"]

logger = logging.getLogger(__name__)

#: The Chromium binary (Debian's package).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Consortium pages after the overview, in sidebar order: link text, heading, screenshot name.
CONSORTIUM_PAGES = (
    ("Per-site metrics", "Per-site metrics", "sites"),
    ("Privacy", "Privacy budget", "privacy"),
    ("Data quality", "Data quality", "data-quality"),
    ("Results", "Results", "results"),
)
#: Every screenshot :func:`shoot_all` writes, as ``<name>.png``.
SHOTS = ("login", "overview", *(page[2] for page in CONSORTIUM_PAGES), "case-viewer")

_VIEWPORT = {"width": 1400, "height": 1000}
_MAX_HEIGHT = 3200
_CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--no-first-run"]
_STARTUP_TIMEOUT_S = 30.0
_WAIT_MS = 20_000
_REFUSED = "Unknown user name or wrong password."
# The script run is over, and everything it drew has painted: no skeleton of a widget whose
# code is still loading, every image decoded, every chart's marks drawn.
_SETTLED = """() => document.querySelector('[data-testid="stApp"]')?.dataset.testScriptState === 'notRunning'
  && !document.querySelector('[data-testid="stSkeleton"]')
  && [...document.images].every(i => i.complete && i.naturalWidth > 0)
  && [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
       .every(c => c.querySelector('canvas, svg.marks'))"""
_CHARTS = "() => document.querySelectorAll('[data-testid=\"stVegaLiteChart\"]').length"


@dataclass(frozen=True)
class Shot:
    """What a screenshot shows.

    Parameters
    ----------
    text : str
        The page's visible text.
    charts : int
        Charts drawn on it.
    """

    text: str
    charts: int


def _require_browser() -> None:
    """Raise with the install hint when Chromium or playwright is missing."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[dev]')")
    if not Path(CHROMIUM).exists():
        missing.append("chromium (make browser, or apt-get install -y chromium)")
    if missing:
        raise RuntimeError("screenshots need " + " and ".join(missing))


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
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
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


def _open(page: Page, heading: str) -> None:
    """Wait for the page's heading, then until its script run is over and all of it painted."""
    page.get_by_role("heading", name=heading).first.wait_for(timeout=_WAIT_MS)
    page.wait_for_function(_SETTLED, timeout=_WAIT_MS)
    page.wait_for_timeout(300)  # let the last elements of the run paint


def _shoot(page: Page, path: Path) -> Shot:
    """Screenshot the whole page (Streamlit scrolls inside its main block, not the document)."""
    for _ in range(2):  # a taller viewport can reflow the page once
        height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": _VIEWPORT["width"],
                                "height": max(_VIEWPORT["height"], min(int(height), _MAX_HEIGHT))})
        page.wait_for_timeout(200)
    page.screenshot(path=str(path))
    page.set_viewport_size(_VIEWPORT)
    return Shot(text=page.inner_text("body"), charts=int(page.evaluate(_CHARTS)))


def _consortium(page: Page, url: str, lead: tuple[str, str], out_dir: Path) -> dict[str, Shot]:
    """Shoot the login form, check that it refuses a wrong password, then shoot every page."""
    page.goto(url)
    page.get_by_role("button", name="Log in").wait_for(timeout=_WAIT_MS)
    _open(page, "FedMPT dashboard")
    _shoot(page, out_dir / "login.png")
    _login(page, lead[0], secrets.token_urlsafe(16))
    page.get_by_text(_REFUSED).wait_for(timeout=_WAIT_MS)
    shots = {"login": Shot(text=page.inner_text("body"), charts=0)}
    _login(page, *lead)
    _open(page, "Overview")
    shots["overview"] = _shoot(page, out_dir / "overview.png")
    for link, heading, name in CONSORTIUM_PAGES:
        page.get_by_role("link", name=link).click()
        _open(page, heading)
        shots[name] = _shoot(page, out_dir / f"{name}.png")
    return shots


def _case_viewer(page: Page, url: str, clinician: tuple[str, str], out_dir: Path) -> Shot:
    """Log in to the case viewer and shoot its first study with the draft report."""
    page.goto(url)
    _login(page, *clinician)
    page.get_by_role("button", name="Accept report").wait_for(timeout=_WAIT_MS)  # logged in
    _open(page, "Case viewer")
    return _shoot(page, out_dir / "case-viewer.png")


def shoot_all(workdir: Path, site_dir: Path, out_dir: Path, *, lead: tuple[str, str],
              clinician: tuple[str, str]) -> dict[str, Shot]:
    """Serve both dashboards on loopback and screenshot every page into ``out_dir``.

    Parameters
    ----------
    workdir : Path
        The consortium's workdir, served with ``fedmpt dashboard --workdir``.
    site_dir : Path
        A site directory with an ingested cache whose first study has a draft report, served
        with ``fedmpt dashboard --site``.
    out_dir : Path
        Folder for the :data:`SHOTS` ``.png`` files (created; existing files are replaced).
    lead : tuple[str, str]
        Name and password of a ``lead`` user of ``workdir``.
    clinician : tuple[str, str]
        Name and password of a user of ``site_dir`` who may open its case viewer.

    Returns
    -------
    dict[str, Shot]
        What each screenshot shows, by name; the ``login`` text is the form's after a wrong
        password was refused.

    Raises
    ------
    RuntimeError
        When Chromium or playwright is missing, or a dashboard does not start.
    playwright.sync_api.TimeoutError
        When a page, its charts or the refusal of a wrong password do not appear in time.
    """
    _require_browser()
    from playwright.sync_api import sync_playwright

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = [("launch", Path(workdir)), ("launch_site", Path(site_dir))]
    with (_serving(*targets) as (url, site_url), sync_playwright() as pw,
          tempfile.TemporaryDirectory(prefix="fedmpt-chromium-") as profile):
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=_CHROMIUM_FLAGS, viewport=_VIEWPORT,
        )
        try:
            page = context.new_page()
            _wait_until_up(url)
            shots = _consortium(page, url, lead, out_dir)
            _wait_until_up(site_url)
            shots["case-viewer"] = _case_viewer(page, site_url, clinician, out_dir)
        finally:
            context.close()
    return shots


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dashboard.screenshots``: screenshots of a real workdir, with throwaway users.

    Returns
    -------
    int
        0 once every screenshot is written; argparse exits with 2 on bad arguments, and
        with 1 when the workdir has no results store, the site directory is missing, or a
        dashboard or the browser fails.
    """
    parser = argparse.ArgumentParser(prog="python -m dashboard.screenshots",
                                     description="Screenshot every dashboard page of a real workdir.")
    parser.add_argument("--workdir", type=Path, required=True, help="the consortium's workdir")
    parser.add_argument("--site", type=Path, required=True, help="a site directory for the case viewer")
    parser.add_argument("--out", type=Path, required=True, help="folder for the .png files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not store_path(args.workdir).is_file():
        parser.exit(1, f"error: no results store at {store_path(args.workdir)}; run make demo first\n")
    if not args.site.is_dir():
        parser.exit(1, f"error: site directory {args.site} does not exist\n")
    try:
        with throwaway_accounts(args.workdir, args.site) as (lead, clinician):
            shoot_all(args.workdir, args.site, args.out, lead=lead, clinician=clinician)
    except (RuntimeError, ValueError) as e:
        parser.exit(1, f"error: {e}\n")
    logger.info("wrote %s to %s", ", ".join(f"{name}.png" for name in SHOTS), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
