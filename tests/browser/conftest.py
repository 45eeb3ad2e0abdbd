"""Fixtures of the real-browser tests: a JupyterLab server, Debian's chromium driven by
Playwright, a page, and a folder for artifacts (screenshots).

Prerequisites follow the suite's rule (mip6lab.testing.prereq): a missing one -- the
playwright package, Debian's chromium, jupyterlab -- skips the test with a reason for a
user and fails it under CI=true. Nothing is downloaded: Playwright is pointed at
/usr/bin/chromium through ``executable_path`` (never ``playwright install``).

The server and the browser are stopped at the end of the module, also on failure: the
server by its process group (mip6lab.testing.jupyter), the browser by Playwright and then,
should any of its processes survive, by PID; only processes these fixtures started.

Artifacts go to ``$MIP6LAB_ARTIFACTS`` or else ``build/artifacts/browser`` in the checkout
(ignored by git); a failing test leaves a screenshot and the server's log there.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from mip6lab.testing.prereq import missing

REPO = Path(__file__).resolve().parents[2]
WHY = "for the real-browser test of the dashboard"
VIEWPORT = {"width": 1600, "height": 1400}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so a fixture can tell a failed test."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = Path(os.environ.get("MIP6LAB_ARTIFACTS") or REPO / "build" / "artifacts" / "browser")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    from mip6lab.testing.jupyter import chromium_path

    path = chromium_path()
    if path is None:
        missing(f"Debian's chromium not found (/usr/bin/chromium, or chromium on PATH) {WHY}; "
                "run scripts/install-system-deps (as root) or apt-get install chromium")
    return path


@pytest.fixture(scope="session")
def sync_api():
    try:
        from playwright import sync_api
    except ImportError as exc:
        missing(f"python package playwright not importable ({exc}) {WHY}; "
                "pip install -e '.[test]' (the browser itself is Debian's chromium: "
                "no `playwright install`)")
    return sync_api


@pytest.fixture(scope="module")
def jupyter_lab():
    """A JupyterLab server over a temporary copy of notebooks/."""
    from mip6lab.testing.jupyter import JupyterLab

    try:
        import ipywidgets  # noqa: F401
        import jupyterlab  # noqa: F401
    except ImportError as exc:
        missing(f"python package {exc.name} not importable {WHY}; pip install -e '.[test]'")
    with JupyterLab() as lab:
        yield lab


@pytest.fixture(scope="module")
def browser(sync_api, chromium_executable):
    """Headless chromium (``--no-sandbox``: the tests may run as root)."""
    from mip6lab.testing.jupyter import descendants, kill_survivors

    me = os.getpid()
    before = set(descendants(me))
    playwright = sync_api.sync_playwright().start()
    started: set = set()
    browser = None
    try:
        browser = playwright.chromium.launch(
            executable_path=chromium_executable, headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        # Playwright's driver and the browser: the processes this fixture started
        started = set(descendants(me)) - before
        yield browser
    finally:
        # with their children started since (renderers), noted before anything is closed
        for pid, _start in list(started):
            started.update(descendants(pid))
        try:
            if browser is not None:
                browser.close()
        finally:
            playwright.stop()
            kill_survivors(sorted(started))


@pytest.fixture
def page(request, browser, jupyter_lab, artifacts_dir):
    """A fresh page; when the test fails, a screenshot and the server's log are saved."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        yield page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            stem = re.sub(r"[^\w.-]+", "_", request.node.name)
            shot = artifacts_dir / f"{stem}-failure.png"
            log = artifacts_dir / f"{stem}-jupyterlab.log"
            try:
                page.screenshot(path=str(shot))
                print(f"\n[browser] failure screenshot: {shot}")
            except Exception as exc:  # the page may be gone; the log still helps
                print(f"\n[browser] no failure screenshot: {exc}")
            log.write_text(jupyter_lab.log_text())
            print(f"[browser] JupyterLab log: {log}")
        context.close()
