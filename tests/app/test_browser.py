"""The dashboard in a real browser: Debian's chromium driven by Playwright (issue 3).

One server per module (``app_url`` in conftest.py), one browser context per page. Every
check polls the page with a deadline and asserts a visible change: texts the session
writes (``.xy-epoch``, ``.xy-status``, ``.xy-couplings``, ``.xy-alert``), pixels of the
Bokeh canvases (screenshots of the view elements), widget values, downloaded files. The
stable hooks are listed in the docstring of ``app/session.py``.
"""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from PIL import Image

from xyprop.engine import DEFAULTS

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

DEADLINE = 30.0  # seconds; generous, the machine is shared with other jobs
LONG = "?epochs=100000"  # XOR runs about an epoch per step: never finishes during a test
VIEWS = ("phase_free", "couplings", "response")  # css classes xy-view-<name>


# -- helpers -------------------------------------------------------------------------------
def poll(pred, what: str, timeout: float = DEADLINE, interval: float = 0.1, seen=None):
    """Wait until ``pred()`` is truthy and return it; fail naming ``what`` (and ``seen()``,
    what the page showed last) at the deadline."""
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > end:
            last = f"; last seen: {seen()!r}" if seen else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{last}")
        time.sleep(interval)


def lattice_couplings(rows: int, cols: int, neighbourhood: int = 8) -> int:
    """Bonds of an open rows x cols lattice (closed forms): 2RC - R - C with four
    neighbours, plus 2(R-1)(C-1) diagonals with eight (the default)."""
    four = 2 * rows * cols - rows - cols
    return four + (2 * (rows - 1) * (cols - 1) if neighbourhood == 8 else 0)


def epoch(page) -> int:
    text = page.locator(".xy-epoch").inner_text()
    m = re.search(r"Epoch (\d+) / (\d+)", text)
    assert m, f"epoch text {text!r}"
    return int(m.group(1))


def status(page) -> tuple[str, int]:
    """(state, step) from the status line ``running | step 340 | ...``."""
    text = page.locator(".xy-status").inner_text()
    m = re.match(r"\s*(\w+) \| step (\d+)", text)
    assert m, f"status text {text!r}"
    return m.group(1), int(m.group(2))


def couplings(page) -> int:
    """The number in ``.xy-couplings`` (``480 couplings | 256 nodes ...``)."""
    text = page.locator(".xy-couplings").get_by_text(re.compile("couplings")).inner_text()
    m = re.search(r"([\d,]+) couplings", text)
    assert m, f"couplings text {text!r}"
    return int(m.group(1).replace(",", ""))


def alert_text(page) -> str:
    """Messages of the visible error alert ('' when it is hidden)."""
    if not page.locator(".xy-alert").is_visible():
        return ""
    return " ".join(page.locator(".xy-alert-text").all_inner_texts())


def button(page, name: str):
    return page.get_by_role("button", name=name, exact=True)


def field(page, name: str, tag: str = "input"):
    """The input (or select) of the setting widget for Config field ``name``."""
    return page.locator(f".xy-field-{name} {tag}")


def set_number(page, name: str, value) -> None:
    """Type into a number input and commit it (Bokeh spinners commit on Enter / blur)."""
    box = field(page, name)
    box.fill(str(value))
    box.press("Enter")
    box.blur()


def view(page, name: str):
    """The element of live view ``name`` (its Bokeh figure; screenshots give its pixels)."""
    return page.locator(f".xy-view-{name}")


def pixels(page, name: str) -> np.ndarray:
    png = view(page, name).screenshot(animations="disabled")
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def settled(page, name: str) -> np.ndarray:
    """Pixels of a view once two screenshots in a row agree (drawing has finished)."""
    last = [pixels(page, name)]

    def same():
        now = pixels(page, name)
        ok = now.shape == last[0].shape and np.array_equal(now, last[0])
        last[0] = now
        return ok

    poll(same, f"view {name} to stop changing")
    return last[0]


def differs(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape != b.shape or not np.array_equal(a, b)


def start_training(page) -> None:
    button(page, "Train").click()
    poll(lambda: button(page, "Pause").is_visible(), "the Train button to read Pause")


def pause_training(page) -> tuple[int, int]:
    """Pause, wait until the page shows the paused state, return (epoch, step) shown."""
    # force: skip Playwright's "element is stable" wait, which takes seconds while the page
    # redraws its canvases many times a second; the mouse still clicks the button.
    button(page, "Pause").click(force=True)
    poll(lambda: button(page, "Train").is_visible(), "the Pause button to read Train")
    poll(lambda: status(page)[0] == "paused", "status 'paused'")
    return epoch(page), status(page)[1]


# -- tests ---------------------------------------------------------------------------------
def test_page_loads_with_controls_and_closed_form_coupling_count(open_page):
    page = open_page()
    assert "xyprop" in page.title()
    header = page.get_by_text(re.compile(r"^xyprop: XY oscillator networks")).first
    assert header.is_visible()
    assert button(page, "Train").is_visible()
    assert button(page, "Reset").is_visible()
    rows, cols = DEFAULTS["rows"], DEFAULTS["cols"]
    assert (int(field(page, "rows").input_value()), int(field(page, "cols").input_value())
            ) == (rows, cols)
    assert DEFAULTS["arch"] == "lattice" and DEFAULTS["neighbourhood"] == 8
    assert couplings(page) == lattice_couplings(rows, cols)  # 42 for 4 x 4
    assert epoch(page) == 0 and status(page) == ("idle", 0)
    for name in VIEWS:
        assert view(page, name).is_visible()


def test_train_advances_epoch_and_changes_every_view(open_page):
    page = open_page(LONG)
    before = {name: settled(page, name) for name in VIEWS}
    start_training(page)
    poll(lambda: epoch(page) >= 2, "the epoch counter to advance")
    assert status(page)[0] == "running"
    # Compare pixels once paused: screenshots of canvases redrawn ~15 times a second take
    # seconds each on a loaded machine; the paused views show what training did.
    ep, step = pause_training(page)
    assert ep >= 2 and step >= 2
    for name in VIEWS:
        poll(lambda name=name: differs(pixels(page, name), before[name]),
             f"view {name} to differ from the untrained one")


def test_pause_stops_progress(open_page):
    page = open_page(LONG)
    start_training(page)
    first = poll(lambda: epoch(page), "training to start")  # the first epoch > 0
    poll(lambda: epoch(page) > first, "the epoch counter to advance while running")
    ep, step = pause_training(page)
    end = time.monotonic() + 1.5
    while time.monotonic() < end:  # frozen for 1.5 s: same epoch, same step, paused
        assert (epoch(page), status(page)) == (ep, ("paused", step))
        time.sleep(0.1)


def test_geometry_change_and_reset_rebuild_views(open_page):
    page = open_page()
    rows, cols = 3, 7
    before = settled(page, "phase_free")
    set_number(page, "rows", rows)
    set_number(page, "cols", cols)
    poll(lambda: couplings(page) == lattice_couplings(rows, cols),
         f"the coupling count of a {rows}x{cols} lattice ({lattice_couplings(rows, cols)})")
    notice = page.locator(".xy-notice-text")
    poll(lambda: "rows" in notice.inner_text() and "cols" in notice.inner_text(),
         "the 'Reset needed' notice to name rows and cols")
    button(page, "Reset").click()
    poll(lambda: not page.locator(".xy-notice").is_visible(), "the notice to go after Reset")
    poll(lambda: differs(pixels(page, "phase_free"), before), "the phase view to be redrawn")
    after = settled(page, "phase_free")
    # the figure holds four panels side by side; each 4 x 4 panel was square, a 3 x 7 panel
    # is 3/7 as tall as wide, so the whole figure's height/width must drop by about half
    h0, w0 = before.shape[:2]
    h1, w1 = after.shape[:2]
    assert (h1 / w1) / (h0 / w0) < 0.7, (before.shape, after.shape)
    assert couplings(page) == lattice_couplings(rows, cols)


def test_downloaded_snapshot_matches_the_page(open_page):
    page = open_page(LONG)
    start_training(page)
    poll(lambda: epoch(page) >= 3, "a few epochs of training")
    ep, step = pause_training(page)
    with page.expect_download(timeout=60_000) as info:
        page.get_by_text("Snapshot (.npz)", exact=True).click()
    path = info.value.path()
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        coupling = z["coupling"]
    assert (meta["epoch"], meta["step"]) == (ep, step)
    assert ep >= 3
    assert coupling.shape == (couplings(page),)
    assert meta["config"]["rows"] == DEFAULTS["rows"]


def test_url_round_trip_restores_settings(open_page):
    page = open_page()
    field(page, "task", "select").select_option("iris")
    set_number(page, "rows", 5)
    set_number(page, "lr", 0.01)

    def address() -> str:
        # The address bar. Playwright's page.url missed history.replaceState here (it kept
        # the first rewrite only), so read the page's own location.
        return page.evaluate("() => window.location.href")

    def query():
        q = parse_qs(urlsplit(address()).query)
        return q if q.get("task") == ["iris"] and q.get("rows") == ["5"] and "lr" in q else {}

    q = poll(query, "the page URL to carry task, rows and lr", seen=address)
    assert float(q["lr"][0]) == pytest.approx(0.01)
    shared = address()
    fresh = open_page(url=shared)  # a new browser context: nothing shared but the URL
    assert fresh.context is not page.context
    assert field(fresh, "task", "select").input_value() == "iris"
    assert int(field(fresh, "rows").input_value()) == 5
    assert float(field(fresh, "lr").input_value()) == pytest.approx(0.01)
    assert int(field(fresh, "cols").input_value()) == DEFAULTS["cols"]
    assert couplings(fresh) == lattice_couplings(5, DEFAULTS["cols"])


def test_two_sessions_train_at_once(open_page):
    pages = [open_page(LONG), open_page(LONG)]
    for p in pages:
        start_training(p)
    start = [epoch(p) for p in pages]
    poll(lambda: all(epoch(p) >= e + 3 for p, e in zip(pages, start, strict=True)),
         "both epoch counters to advance")
    assert [status(p)[0] for p in pages] == ["running", "running"]


def test_errors_show_a_message_and_training_still_works(open_page):
    page = open_page(LONG)
    alert = page.locator(".xy-alert")
    assert not alert.is_visible()
    # a corrupt snapshot upload (zip magic, then garbage)
    page.locator(".xy-upload input[type=file]").set_input_files(
        files=[{"name": "broken.npz", "mimeType": "application/octet-stream",
                "buffer": b"PK\x03\x04" + b"\x00garbage" * 20}])
    poll(lambda: "npz" in alert_text(page), "an alert about the unreadable upload")
    # an invalid geometry: XOR has 2 inputs, one column cannot hold them
    set_number(page, "cols", 1)
    poll(lambda: "cols" in alert_text(page), "an alert naming the field cols")
    set_number(page, "cols", 3)
    poll(lambda: not alert.is_visible(), "the alert to go once cols is valid")
    assert couplings(page) == lattice_couplings(DEFAULTS["rows"], 3)
    start_training(page)  # the pending geometry: Train resets to the 4 x 3 lattice first
    poll(lambda: epoch(page) >= 2, "training after the errors")
    assert status(page)[0] == "running"
    assert not alert.is_visible()


def test_mnist_stacked_network_shows_input_image_and_hidden_sheets(open_page):
    # 28x28 -> 12x12 sheet (window 6, stride 2) on the shipped 480-digit sample; epochs
    # high enough never to finish during the test
    page = open_page("?task=mnist&arch=stacked&window=6&stride=2&batch_size=10"
                     "&epochs=100000")
    assert page.locator(".xy-images").is_visible()
    # the image card replaces the generic node and bond views (too heavy at MNIST scale)
    assert not view(page, "phases").is_visible() and not view(page, "couplings").is_visible()
    counts = page.locator(".xy-stacked-counts").inner_text()
    # closed forms: 12 * 12 sites x 6 * 6 window; dense readout 144 x 10
    assert "28x28 -> 12x12" in counts and "5,184 couplings" in counts, counts
    assert "readout 1,440" in counts, counts
    panels = ("input", "sheets")
    before = {name: settled(page, name) for name in panels}
    start_training(page)
    poll(lambda: status(page)[1] >= 3, "a few MNIST training steps")
    pause_training(page)
    for name in panels:
        assert view(page, name).is_visible()
        poll(lambda name=name: differs(pixels(page, name), before[name]),
             f"the {name} panel to show the trained network's sample")


def test_sweeps_page_plots_an_uploaded_results_file(pw_browser, app_url):
    """/sweeps: upload a sweep's results.csv; the page names its runs and draws them."""
    results = Path(__file__).resolve().parents[2] / "docs/study/s5_digits.results.csv"
    ctx = pw_browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = ctx.new_page()
        page.goto(app_url + "sweeps", timeout=60_000)
        plot = page.locator(".xy-sweeps-plot")
        plot.wait_for(timeout=60_000)

        def shot():
            return np.asarray(Image.open(io.BytesIO(plot.screenshot())).convert("RGB"))

        before = shot()
        page.locator(".xy-sweeps-upload input[type=file]").set_input_files(str(results))
        # the Alert's text sits in a shadow root: find it by text (Playwright pierces those)
        message = page.locator(".xy-sweeps-message").get_by_text("20 runs, 0 failed")
        poll(lambda: message.count() > 0, "the message to count the file's 20 runs")
        poll(lambda: differs(shot(), before), "the plot to draw the runs")
    finally:
        ctx.close()
