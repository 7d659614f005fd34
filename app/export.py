"""Exports of what the dashboard shows: PNG of the views, animated GIF of a run, HTML.

PNG and GIF are drawn with pillow straight from snapshots (no browser, no selenium):
phases on a cyclic colour map, couplings on a symmetric diverging map along the bonds,
responses on a sequential map, each on the network's real geometry. The ``.npz``, CSV and
TOML exports are the engine's own formats (``Snapshot.to_bytes``, metrics CSV,
``Config.to_toml``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import colorcet as cc
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from xyprop.engine import Snapshot, metrics_csv  # noqa: F401  (re-exported for the page)
from xyprop.engine.ep import wrap

PANEL = 300  # pixels per view
PAD = 24


def _lut(palette) -> np.ndarray:
    """A colorcet palette (list of '#rrggbb') as a (256, 3) uint8 table."""
    hexes = list(palette)
    idx = np.linspace(0, len(hexes) - 1, 256).round().astype(int)
    return np.array([[int(hexes[i][k:k + 2], 16) for k in (1, 3, 5)] for i in idx],
                    dtype=np.uint8)


PHASE_LUT = _lut(cc.colorwheel)
COUPLING_LUT = _lut(cc.coolwarm)
RESPONSE_LUT = _lut(cc.fire)


def _colours(values, lut, low, high) -> np.ndarray:
    """Map values to RGB rows (n, 3); NaN becomes grey."""
    v = np.asarray(values, dtype=float)
    t = np.clip((v - low) / max(high - low, 1e-12), 0, 1)
    out = lut[np.nan_to_num(t * 255).astype(int)]
    out[~np.isfinite(v)] = (128, 128, 128)
    return out


@dataclass
class Frame:
    """What one picture needs from a snapshot (small enough to keep hundreds of).

    ``phase`` (N,) free phases of one sample, ``nudge`` (N,) wrapped nudged - free,
    ``coupling`` (E,), ``response`` (N,).
    """

    epoch: int
    step: int
    phase: np.ndarray
    nudge: np.ndarray
    coupling: np.ndarray
    response: np.ndarray
    metrics: dict

    @classmethod
    def of(cls, snap: Snapshot, sample: int = 0) -> Frame:
        n = snap.h.size
        if snap.free_phases.shape[0]:
            row = min(sample, snap.free_phases.shape[0] - 1)
            phase = wrap(snap.free_phases[row])
            nudge = wrap(snap.nudged_phases[row] - snap.free_phases[row])
        else:
            phase = nudge = np.full(n, np.nan)
        return cls(snap.epoch, snap.step, phase.astype(np.float32), nudge.astype(np.float32),
                   snap.coupling.astype(np.float32), snap.response.astype(np.float32),
                   dict(snap.metrics))


class FrameRecorder:
    """Keeps at most ``max_frames`` frames evenly spread over a run (for the GIF).

    When full, every other frame is dropped and the recording stride doubles, so memory
    stays bounded however long the run is.
    """

    def __init__(self, max_frames: int = 120):
        self.max_frames = max_frames
        self.frames: list[Frame] = []
        self.stride = 1
        self._seen = 0

    def add(self, snap: Snapshot, sample: int = 0) -> None:
        if self._seen % self.stride == 0:
            self.frames.append(Frame.of(snap, sample))
            if len(self.frames) > self.max_frames:
                self.frames = self.frames[::2]
                self.stride *= 2
        self._seen += 1

    def clear(self) -> None:
        self.frames, self.stride, self._seen = [], 1, 0


def _layout(coords: np.ndarray, size: int, square: bool) -> tuple[np.ndarray, float]:
    """Pixel positions (N, 2) of nodes inside a ``size`` square, and a node radius.

    Lattices keep square cells; layered drawings stretch each axis to fill the panel.
    """
    xy = np.asarray(coords, dtype=float)
    lo, hi = xy.min(0), xy.max(0)
    spans = np.maximum(hi - lo, 1.0)
    scale = (size - 2 * PAD) / (spans.max() if square else spans)
    px = PAD + (xy - lo) * scale + (size - 2 * PAD - (hi - lo) * scale) / 2
    radius = max(2.0, min(float(np.min(scale)) * 0.45, 14.0))
    return px, radius


def _panel(snap: Snapshot, title: str, node_rgb=None, edge_rgb=None) -> Image.Image:
    img = Image.new("RGB", (PANEL, PANEL + 18), "white")
    d = ImageDraw.Draw(img)
    d.text((6, 2), title, fill="black", font=ImageFont.load_default())
    lattice = snap.kind == "lattice"
    px, r = _layout(snap.coords, PANEL, square=lattice)
    px = px + (0, 18)
    if edge_rgb is not None:
        width = max(1, int(r * 0.5)) if lattice else 1
        for k in np.argsort(np.abs(snap.coupling)):
            a, b = px[snap.src[k]], px[snap.dst[k]]
            d.line([tuple(a), tuple(b)], fill=tuple(int(c) for c in edge_rgb[k]), width=width)
    marks = {int(i): "black" for i in snap.input_nodes}
    marks.update({int(i): "#00a000" for i in snap.output_nodes})
    for i, (x, y) in enumerate(px):
        fill = tuple(int(c) for c in node_rgb[i]) if node_rgb is not None else (235, 235, 235)
        box = [x - r, y - r, x + r, y + r]
        outline = marks.get(i, "#808080" if node_rgb is None else None)
        if lattice and node_rgb is not None:
            d.rectangle(box, fill=fill, outline=outline, width=2 if i in marks else 1)
        else:
            d.ellipse(box, fill=fill, outline=outline, width=2 if i in marks else 1)
    return img


def render(snap: Snapshot, frame: Frame | None = None) -> Image.Image:
    """The four views of one moment (phases, nudge, couplings, responses) side by side."""
    f = frame or Frame.of(snap)
    wmax = float(np.max(np.abs(f.coupling))) if f.coupling.size else 1.0
    rmax = float(np.nanmax(f.response)) if np.isfinite(f.response).any() else 1.0
    nmax = float(np.nanmax(np.abs(f.nudge))) if np.isfinite(f.nudge).any() else 1.0
    panels = [
        _panel(snap, "phase (free)", _colours(f.phase, PHASE_LUT, -np.pi, np.pi)),
        _panel(snap, "nudged - free", _colours(f.nudge, COUPLING_LUT, -nmax, nmax)),
        _panel(snap, f"couplings (|w| <= {wmax:.2g})",
               edge_rgb=_colours(f.coupling, COUPLING_LUT, -wmax, wmax)),
        _panel(snap, "response", _colours(f.response, RESPONSE_LUT, 0, max(rmax, 1e-12))),
    ]
    out = Image.new("RGB", (PANEL * len(panels), PANEL + 40), "white")
    for k, p in enumerate(panels):
        out.paste(p, (k * PANEL, 22))
    m = f.metrics
    acc = (f"  train acc {m['train_accuracy']:.3f}  test acc {m['test_accuracy']:.3f}"
           if m else "")
    ImageDraw.Draw(out).text((6, 4), f"epoch {f.epoch}  step {f.step}{acc}", fill="black",
                             font=ImageFont.load_default())
    return out


def png_bytes(snap: Snapshot, sample: int = 0) -> bytes:
    """PNG of the current views of ``snap`` (the chosen ``sample``'s phases)."""
    buf = io.BytesIO()
    render(snap, Frame.of(snap, sample)).save(buf, format="PNG")
    return buf.getvalue()


def gif_bytes(snap: Snapshot, frames: list[Frame], ms_per_frame: int = 120) -> bytes:
    """Animated GIF of the phase, coupling and response evolution over ``frames``.

    ``snap`` supplies the geometry (all frames must come from the same network).
    """
    if not frames:
        raise ValueError("animation: no frames recorded yet; train for a few steps first")
    images = [render(snap, f).convert("P", palette=Image.Palette.ADAPTIVE) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=ms_per_frame, loop=0)
    return buf.getvalue()


def html_bytes(frame, sample: int = 0, title: str = "xyprop views") -> bytes:
    """A standalone, interactive HTML page of the current views that renders offline.

    ``frame`` is a runner frame (``snapshot``, ``state``, ``confusion``). The figures are
    built afresh from it (live figures belong to the page's document and cannot be moved),
    and BokehJS is inlined, so the file needs no network.
    """
    from bokeh.embed import file_html
    from bokeh.layouts import column, row

    from .plots import LiveViews

    views = LiveViews(frame.snapshot)
    views.update(_Final(frame), sample, now=0.0)
    f = views.figures
    layout = column(row(f["phases"], f["outputs"]), row(f["couplings"], f["confusion"]),
                    row(f["loss"], f["accuracy"]))
    snap = frame.snapshot
    head = f"{title}: epoch {snap.epoch}, step {snap.step}"
    return file_html(layout, _bokeh_inline(), head).encode()


def _bokeh_inline():
    """Inline BokehJS without other libraries' files. Bokeh's resources list the external
    files of every model class imported in the process, so once the Sweeps page has drawn a
    Panel table, Tabulator's CDN and server links would enter the file and break it
    offline; the views here use Bokeh's own models only."""
    from bokeh.resources import Resources

    class BokehOnly(Resources):
        def _collect_external_resources(self, resource_attr):
            return []

        def clone(self, *, components=None):  # file_html bundles from a clone
            return BokehOnly(mode="inline", components=components or list(self.components))

    return BokehOnly(mode="inline")


class _Final:
    """A frame drawn as the last one (every view refreshed, whatever its throttle)."""

    def __init__(self, frame):
        self.snapshot, self.confusion, self.state = frame.snapshot, frame.confusion, "finished"

