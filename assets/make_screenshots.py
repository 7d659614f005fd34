"""Screenshots of the dashboard for the README (assets/screenshots/).

    python assets/make_screenshots.py [--only dashboard ...]

Serves the app in-process (``app/server.py``'s ``serve``, as ``xyprop serve`` does), opens
each page below in Debian's headless chromium (Playwright), presses Train, lets it train
for a while, pauses and saves a full-page screenshot. Needs the test extras and chromium.
"""

from __future__ import annotations

import argparse
import time
import urllib.request
from pathlib import Path

OUT = Path(__file__).resolve().parent / "screenshots"
VIEWPORT = {"width": 1480, "height": 1208}
CHROMIUM = "/usr/bin/chromium"

#: name -> (URL query, seconds of training before the pause, if it has not finished)
PAGES = {
    # the default 8-neighbour lattice with its lattice start; lr decay against Adam's drift
    "dashboard": ("?task=iris&arch=lattice&rows=6&cols=6&lr=0.02&batch_size=5"
                  "&lr_decay=0.005&epochs=200", 25),
    "dashboard-layered": ("?task=digits&arch=layered&layers=100&lr=0.01&batch_size=10"
                          "&epochs=10", 20),
    "dashboard-mnist": ("?task=mnist&arch=stacked&window=6&stride=1&channels=2"
                        "&weight_sharing=true&batch_size=20&lr=0.02&epochs=200", 30),
}


def main(argv=None) -> None:
    from playwright.sync_api import sync_playwright

    from xyprop.app.server import serve
    from xyprop.app.session import ACTIVE

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=list(PAGES), choices=list(PAGES))
    args = ap.parse_args(argv)
    thread = serve(port=0, address="127.0.0.1", threaded=True, show=False)
    url = f"http://127.0.0.1:{serve.last_port}/"
    for _ in range(600):  # the thread binds the port shortly after serve() returns
        try:
            urllib.request.urlopen(url, timeout=10)
            break
        except OSError:
            time.sleep(0.1)
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for name in args.only:
            query, seconds = PAGES[name]
            ctx = browser.new_context(viewport=VIEWPORT)
            page = ctx.new_page()
            page.goto(url + query, timeout=60_000)
            page.get_by_role("button", name="Train", exact=True).click(timeout=60_000)
            time.sleep(seconds)
            pause = page.get_by_role("button", name="Pause", exact=True)
            if pause.is_visible():  # still training (else it has finished its epochs)
                pause.click(force=True)
            page.get_by_role("button", name="Train", exact=True).wait_for(timeout=60_000)
            time.sleep(2)  # the last frame reaches the page
            path = OUT / f"{name}.png"
            page.screenshot(path=str(path))
            print(f"wrote {path}")
            ctx.close()
            for dash in list(ACTIVE):
                dash.runner.stop(timeout=30)
        browser.close()
    thread.stop()


if __name__ == "__main__":
    main()
