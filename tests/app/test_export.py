"""PNG / GIF exports: decodable images whose pixels show the snapshot's values."""

import io

import numpy as np
import pandas as pd
from PIL import Image

from xyprop.app.export import (
    PANEL,
    PHASE_LUT,
    FrameRecorder,
    _colours,
    _layout,
    gif_bytes,
    png_bytes,
)
from xyprop.engine import Config, Trainer


def _trained(epochs=5, **kw):
    tr = Trainer(Config(epochs=epochs, **kw))
    rec = FrameRecorder(max_frames=8)
    for snap in tr.steps():
        rec.add(snap)
    return tr.snapshot(), rec


def test_png_pixels_show_the_phases_of_the_chosen_sample():
    snap, _ = _trained(rows=4, cols=4)
    for sample in (0, 3):
        img = Image.open(io.BytesIO(png_bytes(snap, sample))).convert("RGB")
        assert img.size == (4 * PANEL, PANEL + 40)
        px, _ = _layout(snap.coords, PANEL, square=True)
        phase = np.angle(np.exp(1j * snap.free_phases[sample]))
        expected = _colours(phase, PHASE_LUT, -np.pi, np.pi)
        for node in (5, 6, 9, 10):  # hidden sites: no role outline over their centre
            x, y = px[node] + (0, 18 + 22)
            assert tuple(img.getpixel((int(x), int(y)))) == tuple(expected[node])


def test_gif_has_one_frame_per_recorded_step_and_recorder_is_bounded():
    snap, rec = _trained(epochs=40, rows=3, cols=3)
    assert len(rec.frames) <= 8 and rec.stride > 1
    steps = [f.step for f in rec.frames]
    assert steps == sorted(steps) and len(set(np.diff(steps))) == 1  # evenly spread
    gif = Image.open(io.BytesIO(gif_bytes(snap, rec.frames)))
    assert gif.n_frames == len(rec.frames)


def test_png_of_layered_network():
    tr = Trainer(Config(task="iris", arch="layered", layers=(6,), epochs=1))
    tr.run()
    img = Image.open(io.BytesIO(png_bytes(tr.snapshot())))
    assert img.format == "PNG" and img.size[0] == 4 * PANEL


def test_html_is_standalone_and_carries_the_views():
    import types

    snap, _ = _trained(rows=3, cols=4)
    frame = types.SimpleNamespace(snapshot=snap, confusion=None, state="paused")
    from xyprop.app.export import html_bytes

    html = html_bytes(frame).decode()
    assert "cdn.bokeh.org" not in html and "https://" not in html.split("<body")[0]
    for title in ("Free equilibrium", "Couplings w", "Response"):
        assert title in html
    # the phases of the snapshot are in the embedded document (float32 of sample 0)
    assert f"epoch {snap.epoch}" in html


def test_dashboard_export_buttons_serve_png_gif_html():
    """The page's download callbacks: one GIF frame per drawn training step."""
    import time

    from xyprop.app.session import Dashboard

    d = Dashboard()
    try:
        for _ in range(2):
            before = d.runner.latest().snapshot.step
            d.runner.step_once()
            deadline = time.time() + 30
            while d.runner.latest().snapshot.step == before:
                assert time.time() < deadline
                time.sleep(0.05)
            d.refresh()
        steps = [f.step for f in d.recorder.frames]
        assert steps[-2:] == [1, 2]
        assert Image.open(d._png_file()).format == "PNG"
        assert Image.open(d._gif_file()).n_frames == len(steps)
        assert b"Free equilibrium" in d._html_file().getvalue()
    finally:
        d.runner.stop(timeout=10)


def test_html_stays_offline_after_the_sweeps_page_was_drawn():
    """A served process also draws the Sweeps page, whose Panel table registers CDN and
    server-relative files with Bokeh; the exported page must not pick them up."""
    import types

    import panel as pn

    from xyprop.app.export import html_bytes

    pn.widgets.Tabulator(pd.DataFrame({"a": [1]})).get_root()  # as /sweeps does
    snap, _ = _trained(rows=3, cols=3)
    frame = types.SimpleNamespace(snapshot=snap, confusion=None, state="paused")
    head = html_bytes(frame).decode().split("<body")[0]
    assert "tabulator" not in head and "https://" not in head and "static/" not in head
