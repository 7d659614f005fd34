"""Dashboard speed: view updates per second and training throughput with the page open.

Three measurements (``python bench/bench_dashboard.py [--quick] [--json out.json]``):

1. **Server cost of one full update** (no browser): every live view of a session is
   rewritten from a Snapshot under ``hold`` and the resulting ``PATCH-DOC`` message is
   serialized, as the server does before sending. Milliseconds per update (median).
2. **Served page in a real browser**: the app is served in-process, Debian's chromium
   (driven by Playwright) opens it and presses Train. Reported: periodic-callback ticks/s,
   frames drawn per second by the server, frames received per second by the browser
   (counted in the page), wall and CPU milliseconds per drawn frame.
3. **Training throughput, page open vs headless**: the same run (same seed, so the same
   computation bit for bit) takes N steps headless (``Trainer.step`` in a loop) and in the
   served session with the browser rendering it. Throughput ratio = headless time / page
   time. Pairs are interleaved and repeated; medians are reported, because the machine may
   be shared. The training thread's CPU seconds are reported too: on a loaded machine the
   wall-clock ratio mostly says how much CPU the thread was given, while equal CPU seconds
   show that the page adds no work to training itself.

Frames can only be drawn as fast as training produces them (one frame per step), and no
frames appear while an epoch ends with its evaluation, so the frame rate is shown for a
workload with many steps per second (batch 1) and for batch 8.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# 4-neighbour: the lattice measured for issue 3, before 8 neighbours became the default
LATTICE = dict(task="iris", arch="lattice", rows=16, cols=16, neighbourhood=4, batch_size=8,
               epochs=100000, seed=0)
CASES = {
    "16x16 lattice, iris, batch 8": LATTICE,
    "16x16 lattice, iris, batch 1": {**LATTICE, "batch_size": 1},
    "layered 64-32-10, digits, batch 20": dict(task="digits", arch="layered", layers=(32,),
                                               batch_size=20, epochs=100000, seed=0),
}


def query(cfg: dict) -> str:
    from xyprop.app.settings import URL_PARAMS

    parts = []
    for k, v in cfg.items():
        if k in URL_PARAMS:
            v = ",".join(map(str, v)) if isinstance(v, tuple) else v
            parts.append(f"{k}={v}")
    return "?" + "&".join(parts)


# -- 1. server-side cost ---------------------------------------------------------------------
def update_cost(cfg: dict, n: int = 200) -> dict:
    from bokeh.document import Document
    from bokeh.layouts import column
    from bokeh.protocol import Protocol

    from xyprop.app.plots import LiveViews
    from xyprop.app.runner import Runner
    from xyprop.engine import Config

    r = Runner(Config(**cfg))
    frames = []
    for _ in range(10):
        r.step_once(wait=True)
        frames.append(r.latest())
    r.stop()
    views = LiveViews(frames[0].snapshot)
    doc = Document()
    doc.add_root(column(*views.figures.values()))
    events = []
    doc.on_change(events.append)
    proto = Protocol()
    times, sizes = [], []
    for i in range(n + 10):
        f = frames[i % len(frames)]
        events.clear()
        t0 = time.perf_counter()
        doc.hold("combine")
        views.update(f, 0, now=float(i))
        doc.unhold()
        msg = proto.create("PATCH-DOC", events)
        times.append(time.perf_counter() - t0)
        sizes.append(len(msg.content_json) + sum(len(b.to_bytes()) for b in msg.buffers))
    times = times[10:]
    return {"ms_per_update": 1e3 * statistics.median(times),
            "p90_ms": 1e3 * float(np.percentile(times, 90)),
            "bytes_per_update": int(statistics.median(sizes))}


# -- 2 + 3. served page ----------------------------------------------------------------------
def headless_seconds(cfg: dict, n: int, cpu: bool = False):
    """Wall seconds for steps 2..n+1 of a fresh Trainer (and its CPU seconds if ``cpu``)."""
    from xyprop.engine import Config, Trainer

    tr = Trainer(Config(**{**cfg, "parallel": False}))  # the session's serial kernels
    tr.step()
    t0, c0 = time.perf_counter(), time.thread_time()
    for _ in range(n):
        tr.step()
    wall, used = time.perf_counter() - t0, time.thread_time() - c0
    return (wall, used) if cpu else wall


def thread_cpu(native_id: int) -> float:
    """CPU seconds used so far by one thread of this process (Linux /proc)."""
    with open(f"/proc/self/task/{native_id}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def page_run(port: int, browser, cfg: dict, n: int) -> dict:
    """Open the page, press Train, time steps 2..n+1; count frames on both ends."""
    from xyprop.app.session import ACTIVE

    before = set(ACTIVE)
    page = browser.new_page(viewport={"width": 1480, "height": 1400})
    page.goto(f"http://127.0.0.1:{port}/{query(cfg)}")
    page.get_by_role("button", name="Train").wait_for(timeout=60000)
    d = next(x for x in ACTIVE if x not in before)
    src_id = d.views.out.id  # the output circle changes with every frame, on any geometry
    page.evaluate("""(id) => {
        window.__xy_frames = 0;
        const doc = Bokeh.documents[0];
        doc.on_change((ev) => { if (ev.model && ev.model.id === id) window.__xy_frames++; });
    }""", src_id)
    page.get_by_role("button", name="Train").click()
    tr = d.runner.trainer
    while tr.step_count < 1:
        time.sleep(0.002)
    tid = d.runner._thread.native_id
    t0, s0, c0 = time.perf_counter(), dict(d.stats), page.evaluate("() => window.__xy_frames")
    u0 = thread_cpu(tid)
    while tr.step_count < n + 1:
        time.sleep(0.002)
    u1 = thread_cpu(tid)
    t1, s1, c1 = time.perf_counter(), dict(d.stats), page.evaluate("() => window.__xy_frames")
    page.get_by_role("button", name="Pause").click()
    d.runner.stop()
    page.close()
    dt = t1 - t0
    frames = s1["frames"] - s0["frames"]
    return {"seconds": dt, "trainer_cpu_seconds": u1 - u0,
            "ticks_per_s": (s1["ticks"] - s0["ticks"]) / dt,
            "frames_per_s": frames / dt, "browser_frames_per_s": (c1 - c0) / dt,
            "steps_per_s": n / dt,
            "wall_ms_per_frame": 1e3 * (s1["update_seconds"] - s0["update_seconds"]) / frames,
            "cpu_ms_per_frame": 1e3 * (s1["update_cpu"] - s0["update_cpu"]) / frames}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one pair per case, fewer steps")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the results here")
    ns = ap.parse_args(argv)
    import panel as pn
    from playwright.sync_api import sync_playwright

    from xyprop.app import server
    from xyprop.app.runner import warm_up

    warm_up()
    results = {"load_average_start": os.getloadavg(), "cpus": os.cpu_count(), "cases": {}}
    for name, cfg in CASES.items():
        results["cases"][name] = {"update": update_cost(cfg)}
    server.serve(port=0, show=False, threaded=True, warm=False)
    port = server.serve.last_port
    repeats = 1 if ns.quick else ns.repeats
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for name, cfg in CASES.items():
            steps_per_s = 1 / headless_seconds(cfg, 5) * 5
            n = max(20, int(steps_per_s * (4 if ns.quick else 8)))
            pages, heads, cpus = [], [], []
            for _ in range(repeats):  # interleaved: the machine may be shared
                wall, used = headless_seconds(cfg, n, cpu=True)
                heads.append(wall)
                cpus.append(used)
                pages.append(page_run(port, browser, cfg, n))
            res = results["cases"][name]
            res["steps"] = n
            res["headless_seconds"] = statistics.median(heads)
            res["headless_cpu_seconds"] = statistics.median(cpus)
            res["page"] = {k: statistics.median(r[k] for r in pages) for k in pages[0]}
            res["throughput_ratio"] = statistics.median(
                h / r["seconds"] for h, r in zip(heads, pages, strict=True))
        browser.close()
    pn.state.kill_all_servers()
    results["load_average_end"] = os.getloadavg()
    print(f"load average {results['load_average_start'][0]:.2f} -> "
          f"{results['load_average_end'][0]:.2f} on {results['cpus']} cores")
    for name, r in results["cases"].items():
        u, pg = r["update"], r["page"]
        print(f"\n{name}")
        print(f"  server update (in-process, incl. serialization): {u['ms_per_update']:.2f} ms "
              f"median, {u['p90_ms']:.2f} ms p90, {u['bytes_per_update'] / 1e3:.1f} kB")
        print(f"  served page: {pg['ticks_per_s']:.1f} ticks/s, {pg['frames_per_s']:.1f} "
              f"frames/s drawn, {pg['browser_frames_per_s']:.1f} frames/s received by the "
              f"browser; {pg['wall_ms_per_frame']:.1f} ms wall, {pg['cpu_ms_per_frame']:.1f} "
              "ms CPU per frame")
        print(f"  training: {r['steps']} steps headless {r['headless_seconds']:.2f} s, page "
              f"open {pg['seconds']:.2f} s -> throughput {100 * r['throughput_ratio']:.0f} % "
              f"of headless ({pg['steps_per_s']:.1f} steps/s with the page open)")
        print(f"  training thread CPU for those steps: headless {r['headless_cpu_seconds']:.2f} s"
              f" ({100 * r['headless_cpu_seconds'] / r['headless_seconds']:.0f} % of a core), "
              f"page open {pg['trainer_cpu_seconds']:.2f} s "
              f"({100 * pg['trainer_cpu_seconds'] / pg['seconds']:.0f} % of a core)")
    if ns.json:
        with open(ns.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
