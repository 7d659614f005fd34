"""Browser fixtures: Debian's chromium driven by Playwright, the dashboard served in-process.

Only ``tests/app/test_browser.py`` uses these (fixtures are lazy, other tests pay nothing).
The names avoid pytest-playwright's own fixtures (``browser``, ``page``, ``context``, ...),
which would try to launch Playwright's downloaded browsers, absent here.

Without ``/usr/bin/chromium`` (or the ``playwright`` package) the browser tests skip with
the reason, except when the environment variable ``CI`` is set: CI must fail, not skip.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 1000}
PAGE_TIMEOUT_MS = 30_000  # generous: the machine is shared with other jobs


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str):
    """Skip locally; on CI a missing browser is a broken environment, so fail."""
    if _in_ci():
        pytest.fail(f"{reason} (CI is set: browser tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pw_browser():
    """One headless chromium for the whole run (contexts isolate the tests)."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} not found; install Debian's chromium "
                     "(apt-get install chromium), as tests/run.sh does")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        _unavailable(f"python package playwright not importable ({e})")
    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                     headless=True)
    except Exception as e:  # noqa: BLE001 - report why the browser did not start
        pw.stop()
        _unavailable(f"chromium at {CHROMIUM} did not start: {e}")
    yield browser
    browser.close()
    pw.stop()


def _stop_runners() -> None:
    """End the training threads of every dashboard of this process (closed tabs would
    stop theirs only after the unused-session timeout, and steal CPU from the next test)."""
    from xyprop.app.session import ACTIVE

    for dash in list(ACTIVE):
        dash.runner.stop(timeout=30)


@pytest.fixture(scope="module")
def app_url(pw_browser):
    """Serve the dashboard (``app/server.py``'s ``serve``, so the same app factory as
    ``xyprop serve``) on a free port in a thread; yields the page URL."""
    from xyprop.app.server import serve

    thread = serve(port=0, address="127.0.0.1", threaded=True, show=False)
    url = f"http://127.0.0.1:{serve.last_port}/"
    deadline = time.monotonic() + 60
    while True:  # the thread binds the port shortly after serve() returns
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                if r.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            thread.stop()
            pytest.fail(f"dashboard server at {url} did not answer within 60 s")
        time.sleep(0.1)
    yield url
    _stop_runners()
    thread.stop()
    thread.join(timeout=30)


@pytest.fixture
def open_page(pw_browser, app_url):
    """``open_page(query="")``: a page with the dashboard loaded, in a new browser context
    (each call is a separate browser session). Contexts close and training threads stop
    when the test ends."""
    contexts = []

    def _open(query: str = "", url: str | None = None):
        ctx = pw_browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        contexts.append(ctx)
        ctx.set_default_timeout(PAGE_TIMEOUT_MS)
        page = ctx.new_page()
        page.goto(url or app_url + query, timeout=60_000)
        # Loaded = the Bokeh document is built and the session has drawn its first frame.
        page.get_by_role("button", name="Train", exact=True).wait_for(timeout=60_000)
        page.locator(".xy-epoch").wait_for(timeout=60_000)
        return page

    yield _open
    for ctx in contexts:
        ctx.close()
    _stop_runners()
