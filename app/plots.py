"""Snapshot -> plot data, and the live Bokeh figures of one dashboard session.

The first half is pure functions (arrays in, arrays or column dicts out; no Bokeh objects),
tested in ``tests/app/test_plots.py`` and reusable by exports. The second half,
:class:`LiveViews`, builds every figure of one session once and afterwards only replaces
``ColumnDataSource`` columns (float32) and colour-mapper limits, which costs well under a
millisecond per view, where rebuilding a HoloViews element costs 10-20 ms.

Geometry conventions: node ``i`` is drawn at ``coords[i] = (x, y)``; for lattices ``x`` is
the column and ``y`` the row, and the y axis is flipped so the input row is on top.
"""

from __future__ import annotations

import math

import colorcet as cc
import numpy as np
from bokeh.models import (
    BasicTicker,
    ColorBar,
    ColumnDataSource,
    FixedTicker,
    HoverTool,
    LinearColorMapper,
    Range1d,
)
from bokeh.palettes import Category10
from bokeh.plotting import figure

from xyprop.engine import Snapshot, wrap

PHASE_PALETTE = list(cc.colorwheel)  # cyclic: -pi and pi get the same colour
COUPLING_PALETTE = list(cc.coolwarm)  # diverging, used with symmetric limits
RESPONSE_PALETTE = list(cc.CET_L18)  # white (no response) to dark red
CONFUSION_PALETTE = list(cc.blues)
NAN_COLOR = "#e6e6e6"
PI = "\u03c0"


# == pure data functions ==================================================================
def sample_row(snap: Snapshot, sample: int) -> int | None:
    """Row of the last batch shown for ``sample`` (clamped), or None before the first step."""
    b = snap.free_phases.shape[0]
    return None if b == 0 else int(min(max(int(sample), 0), b - 1))


def phase_values(snap: Snapshot, sample: int) -> dict[str, np.ndarray]:
    """Per-node phases of one row of the last batch: ``free``, ``nudged``, ``diff``.

    Returns float32 arrays (N,) in [-pi, pi); ``diff = wrap(nudged - free)``. Before the
    first step all three are NaN (drawn in ``NAN_COLOR``).
    """
    r = sample_row(snap, sample)
    n = snap.h.shape[0]
    if r is None:
        nan = np.full(n, np.nan, np.float32)
        return {"free": nan, "nudged": nan.copy(), "diff": nan.copy()}
    f, b = snap.free_phases[r], snap.nudged_phases[r]
    return {"free": wrap(f).astype(np.float32), "nudged": wrap(b).astype(np.float32),
            "diff": wrap(b - f).astype(np.float32)}


def lattice_image(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Per-node values (N,) of a lattice -> image (rows, cols); node ``r*cols+c`` at [r, c]."""
    rows, cols = shape
    return np.asarray(values, np.float32).reshape(rows, cols)


def symmetric_limit(values: np.ndarray, floor: float = 1e-12) -> float:
    """``max |v|`` over finite values (at least ``floor``): colour limits are (-lim, lim)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(max(np.abs(v).max(), floor)) if v.size else 1.0


def map_colors(values, palette, low: float, high: float, nan_color: str = NAN_COLOR):
    """Colours of ``values`` exactly as Bokeh's ``LinearColorMapper(palette, low, high)``.

    Bin ``k = floor((v - low) / (high - low) * n)`` clipped to ``0..n-1``; NaN ->
    ``nan_color``. Returns a list of hex strings (for exports and tests).
    """
    v = np.asarray(values, dtype=np.float64)
    n = len(palette)
    with np.errstate(invalid="ignore"):
        k = np.floor((v - low) / (high - low) * n)
    k = np.clip(np.nan_to_num(k, nan=0), 0, n - 1).astype(int)
    return [nan_color if not math.isfinite(x) else palette[i]
            for x, i in zip(v.ravel(), k.ravel(), strict=True)]


def bond_segments(coords: np.ndarray, src: np.ndarray, dst: np.ndarray,
                  lattice: bool = True) -> dict[str, np.ndarray]:
    """Segment end points (E,) each for ``x0, y0, x1, y1`` (float32).

    On lattices, bonds longer than a diagonal (skip connections) are bowed sideways by a
    quarter site so they do not hide the nearest-neighbour bonds under them.
    """
    p, q = coords[src].astype(np.float64), coords[dst].astype(np.float64)
    if lattice and len(src):
        long = np.hypot(*(q - p).T) > 1.5
        p[long, 0] += 0.25
        q[long, 0] += 0.25
    return {"x0": p[:, 0].astype(np.float32), "y0": p[:, 1].astype(np.float32),
            "x1": q[:, 0].astype(np.float32), "y1": q[:, 1].astype(np.float32)}


def coupling_matrix(n_nodes: int, src, dst, values) -> np.ndarray:
    """Symmetric (N, N) float32 matrix with ``values`` at (src, dst) and (dst, src); NaN
    where nodes are not coupled."""
    m = np.full((n_nodes, n_nodes), np.nan, np.float32)
    m[src, dst] = values
    m[dst, src] = values
    return m


def curve_data(history: list[dict]) -> dict[str, np.ndarray]:
    """Metric history -> columns ``epoch, train_loss, test_loss, train_accuracy,
    test_accuracy`` (float64, one row per finished epoch)."""
    keys = ("epoch", "train_loss", "test_loss", "train_accuracy", "test_accuracy")
    return {k: np.array([h.get(k, np.nan) for h in history], dtype=np.float64) for k in keys}


def output_points(snap: Snapshot, sample: int) -> dict[str, list]:
    """Output phases of one sample on the unit circle: free ``x, y``, nudged ``nx, ny``,
    target ``tx, ty``, plus ``label`` and ``color`` per output node."""
    r = sample_row(snap, sample)
    out = snap.output_nodes
    n = out.size
    if r is None:
        f = b = t = np.full(n, np.nan)
    else:
        f, b = snap.free_phases[r, out], snap.nudged_phases[r, out]
        t = snap.batch_targets[r]
    pal = Category10[10]
    return {"x": np.cos(f), "y": np.sin(f), "nx": np.cos(b), "ny": np.sin(b),
            "tx": np.cos(t), "ty": np.sin(t), "phase": wrap(f),
            "label": [f"out {k}" for k in range(n)], "color": [pal[k % 10] for k in range(n)]}


def confusion_data(cm: np.ndarray | None, n_classes: int) -> dict[str, list]:
    """Confusion counts (C, C) -> one row per cell: ``true, pred, count, frac`` (row share)
    and ``text``. ``cm=None`` (no epoch finished) gives zero counts."""
    if cm is None:
        cm = np.zeros((n_classes, n_classes), np.int64)
    t, p = np.divmod(np.arange(cm.size), cm.shape[1])
    rows = cm.sum(1, keepdims=True)
    frac = (cm / np.maximum(rows, 1)).ravel()
    return {"true": [str(i) for i in t], "pred": [str(j) for j in p],
            "count": cm.ravel().tolist(), "frac": frac.tolist(),
            "text": [str(int(c)) for c in cm.ravel()]}


def status_values(frame) -> dict:
    """Numbers for the status line from a runner ``Frame``."""
    s = frame.snapshot
    m = s.metrics
    return {"state": frame.state, "epoch": s.epoch, "epochs": s.config.epochs, "step": s.step,
            "samples_per_s": frame.samples_per_s,
            "iterations": float(s.info.get("mean_iterations") or 0.0),
            "failures": int(m.get("failures", 0)), "train_accuracy": m.get("train_accuracy"),
            "test_accuracy": m.get("test_accuracy"), "loss": s.info.get("loss")}


def geometry_key(snap: Snapshot) -> tuple:
    """Views must be rebuilt when this changes (different nodes, bonds or classes)."""
    return (snap.kind, snap.shape, snap.h.shape[0], snap.src.shape[0],
            snap.output_nodes.size, snap.config.task)


# == Bokeh figures ========================================================================
def _fig(title, w, h, **kw):
    """A figure whose plotting area (frame) is w x h px, whatever the axes and bars take."""
    f = figure(title=title, frame_width=w, frame_height=h, toolbar_location=None, **kw)
    f.title.text_font_size = "11pt"
    return f


def _bare(f):
    f.axis.visible = False
    f.grid.visible = False
    f.outline_line_color = None
    return f


class LiveViews:
    """All live figures of one session for one network geometry.

    ``figures`` maps names (``phase_free``, ``phase_nudged``, ``phase_diff``,
    ``couplings``, ``change``, ``response``, ``loss``, ``accuracy``, ``outputs``,
    ``confusion``) to Bokeh models. ``update(frame, sample)`` only writes data.
    """

    SIDE = 230  # px of one geometry view

    def __init__(self, snap: Snapshot):
        self.key = geometry_key(snap)
        self.lattice = snap.kind == "lattice" and snap.shape is not None
        n, coords = snap.h.shape[0], snap.coords.astype(np.float32)
        self.n_nodes, self.n_classes = n, max(snap.output_nodes.size, 2)
        self._last_heavy = -1e9
        self._hist_len = -1
        self._cm_id = None
        x, y = coords[:, 0], coords[:, 1]
        role = np.full(n, "hidden", dtype=object)
        role[snap.input_nodes] = "input"
        role[snap.output_nodes] = "output"
        nan = np.full(n, np.nan, np.float32)
        self.nodes = ColumnDataSource({"x": x, "y": y, "i": np.arange(n), "role": list(role),
                                       "free": nan, "nudged": nan, "diff": nan,
                                       "response": nan})
        self.ins = ColumnDataSource({"x": x[snap.input_nodes], "y": y[snap.input_nodes]})
        self.outs = ColumnDataSource({"x": x[snap.output_nodes], "y": y[snap.output_nodes]})
        per_col = np.unique(x, return_counts=True)[1].max() if n else 1
        self.marker = float(np.clip(180 / max(per_col, 1), 3, 16))
        self.phase_map = LinearColorMapper(PHASE_PALETTE, low=-np.pi, high=np.pi,
                                           nan_color=NAN_COLOR)
        self.resp_map = LinearColorMapper(RESPONSE_PALETTE, low=0, high=1, nan_color=NAN_COLOR)
        self.w_map = LinearColorMapper(COUPLING_PALETTE, low=-1, high=1, nan_color=NAN_COLOR)
        self.dw_map = LinearColorMapper(COUPLING_PALETTE, low=-1, high=1, nan_color=NAN_COLOR)
        f = {}
        titles = {"free": "Free equilibrium", "nudged": "Nudged (+beta)",
                  "diff": "Nudged - free"}
        share = None
        for k, t in titles.items():
            f[f"phase_{k}"] = share = self._node_view(t, k, self.phase_map, share)
        f["response"] = self._node_view("Response |dphi|/beta", "response", self.resp_map,
                                        share)
        f["phase_diff"].add_layout(ColorBar(
            color_mapper=self.phase_map, width=10, title="phase",
            ticker=FixedTicker(ticks=[-np.pi, -np.pi / 2, 0, np.pi / 2, np.pi]),
            major_label_overrides={-np.pi: f"-{PI}", -np.pi / 2: f"-{PI}/2", 0: "0",
                                   np.pi / 2: f"{PI}/2", np.pi: PI}), "right")
        f["response"].add_layout(ColorBar(color_mapper=self.resp_map, width=10,
                                          ticker=BasicTicker(desired_num_ticks=4)), "right")
        if self.lattice:
            seg = bond_segments(coords, snap.src, snap.dst)
            self.edges = ColumnDataSource({**seg, "w": snap.coupling.astype(np.float32),
                                           "dw": snap.coupling_change.astype(np.float32)})
            f["couplings"] = self._bond_view("Couplings w", "w", self.w_map, share)
            f["change"] = self._bond_view("Change of w, last update", "dw", self.dw_map,
                                          share)
        else:
            self.edges = None
            self.mat = ColumnDataSource({"w": [coupling_matrix(n, snap.src, snap.dst,
                                                               snap.coupling)],
                                         "dw": [coupling_matrix(n, snap.src, snap.dst,
                                                                snap.coupling_change)]})
            f["couplings"] = self._matrix_view("Coupling matrix w", "w", self.w_map)
            f["change"] = self._matrix_view("Change of w, last update", "dw", self.dw_map)
        self.curves = ColumnDataSource(curve_data([]))
        f["loss"], f["accuracy"] = self._curve_view("Loss", "loss"), self._curve_view(
            "Accuracy", "accuracy")
        f["accuracy"].y_range = Range1d(-0.02, 1.02)
        self.out = ColumnDataSource(output_points(snap, 0))
        f["outputs"] = self._circle_view()
        self.cm = ColumnDataSource(confusion_data(None, self.n_classes))
        f["confusion"] = self._confusion_view()
        self.figures = f

    # -- figure builders -------------------------------------------------------------------
    def _frame(self, title, share):
        w = h = self.SIDE
        kw = {}
        if share is not None:
            kw.update(x_range=share.x_range, y_range=share.y_range)
        elif self.lattice:
            rows, cols = self.key[1]
            # One site = one square; start > end flips y so the input row is on top.
            kw.update(x_range=Range1d(-0.7, cols - 0.3), y_range=Range1d(rows - 0.3, -0.7))
        if self.lattice:
            rows, cols = self.key[1]
            w, h = (round(self.SIDE * cols / max(rows, cols)),
                    round(self.SIDE * rows / max(rows, cols)))
        return _bare(_fig(title, w, h, **kw))

    def _node_view(self, title, field, mapper, share):
        f = self._frame(title, share)
        color = {"field": field, "transform": mapper}
        if self.lattice:
            r = f.rect("x", "y", 1, 1, source=self.nodes, fill_color=color, line_color=None)
        else:
            r = f.scatter("x", "y", source=self.nodes, size=self.marker, fill_color=color,
                          line_color="#555555", line_width=0.5)
        s = self.marker * (1.6 if self.lattice else 1.3)
        for src, marker in ((self.ins, "inverted_triangle"), (self.outs, "square")):
            f.scatter("x", "y", source=src, marker=marker, size=s, fill_alpha=0,
                      line_color="black", line_width=2)
        f.add_tools(HoverTool(renderers=[r], tooltips=[("node", "@i (@role)"),
                                                       (field, f"@{field}{{0.000}}")]))
        return f

    def _bond_view(self, title, field, mapper, share):
        f = self._frame(title, share)
        lw = float(np.clip(60 / max(self.key[1]), 1.5, 6))
        r = f.segment("x0", "y0", "x1", "y1", source=self.edges, line_width=lw,
                      line_color={"field": field, "transform": mapper})
        f.scatter("x", "y", source=self.nodes, size=max(self.marker * 0.35, 2), color="#444444")
        f.scatter("x", "y", source=self.ins, marker="inverted_triangle", size=self.marker,
                  fill_alpha=0, line_color="black", line_width=2)
        f.scatter("x", "y", source=self.outs, marker="square", size=self.marker,
                  fill_alpha=0, line_color="black", line_width=2)
        f.add_tools(HoverTool(renderers=[r], tooltips=[(field, f"@{field}{{0.0000}}")]))
        f.add_layout(ColorBar(color_mapper=mapper, width=10,
                              ticker=BasicTicker(desired_num_ticks=5)), "right")
        return f

    def _matrix_view(self, title, field, mapper):
        n = self.n_nodes
        f = _fig(title, self.SIDE, self.SIDE, x_range=(0, n), y_range=(n, 0))
        f.image(image=field, x=0, y=0, dw=n, dh=n, source=self.mat, color_mapper=mapper)
        f.xaxis.axis_label, f.yaxis.axis_label = "node j", "node i"
        f.grid.visible = False
        f.add_layout(ColorBar(color_mapper=mapper, width=10,
                              ticker=BasicTicker(desired_num_ticks=5)), "right")
        return f

    def _curve_view(self, title, what):
        f = _fig(title, 290, 190)
        pal = ("#1f77b4", "#d62728")
        rs = []
        for split, c in zip(("train", "test"), pal, strict=True):
            col = f"{split}_{what}"
            f.line("epoch", col, source=self.curves, color=c, line_width=2, legend_label=split)
            rs.append(f.scatter("epoch", col, source=self.curves, color=c, size=4))
        f.add_tools(HoverTool(renderers=rs[:1], mode="vline", tooltips=[
            ("epoch", "@epoch{0}"), ("train", f"@train_{what}{{0.000}}"),
            ("test", f"@test_{what}{{0.000}}")]))
        f.xaxis.axis_label = "epoch"
        f.legend.location = "bottom_right" if what == "accuracy" else "top_right"
        f.legend.label_text_font_size = "8pt"
        return f

    def _circle_view(self):
        f = _fig("Output phases (this sample)", 200, 200, x_range=(-1.35, 1.35),
                 y_range=(-1.35, 1.35), match_aspect=True)
        _bare(f)
        t = np.linspace(0, 2 * np.pi, 200)
        f.line(np.cos(t), np.sin(t), color="#999999")
        f.segment(0, 0, "x", "y", source=self.out, color="color", line_width=2)
        f.scatter("tx", "ty", source=self.out, size=16, fill_alpha=0, line_color="color",
                  line_width=2, legend_label="target")
        f.scatter("nx", "ny", source=self.out, marker="x", size=10, color="color",
                  legend_label="nudged")
        r = f.scatter("x", "y", source=self.out, size=10, color="color", legend_label="free")
        f.add_tools(HoverTool(renderers=[r], tooltips=[("", "@label"), ("phase",
                                                                          "@phase{0.000}")]))
        f.legend.label_text_font_size = "8pt"
        f.legend.padding = 2
        f.legend.background_fill_alpha = 0.6
        return f

    def _confusion_view(self):
        cls = [str(i) for i in range(self.n_classes)]
        f = _fig("Test set, last epoch", 200, 200, x_range=cls,
                 y_range=list(reversed(cls)))
        m = LinearColorMapper(CONFUSION_PALETTE, low=0, high=1)
        f.rect("pred", "true", 1, 1, source=self.cm, line_color="white",
               fill_color={"field": "frac", "transform": m})
        f.text("pred", "true", text="text", source=self.cm, text_align="center",
               text_baseline="middle", text_font_size="9pt", color="#202020")
        f.xaxis.axis_label, f.yaxis.axis_label = "predicted", "true"
        f.grid.visible = False
        return f

    # -- updates ---------------------------------------------------------------------------
    def update(self, frame, sample: int = 0, now: float = 0.0) -> None:
        """Write ``frame`` into the sources (call under ``hold()`` on the event loop).

        Coupling matrices with more than 40,000 cells are redrawn at most twice a second.
        """
        s, w = frame.snapshot, _f32
        ph = phase_values(s, sample)
        resp = s.response.astype(np.float32)
        self.nodes.data.update(free=w(ph["free"]), nudged=w(ph["nudged"]),
                               diff=w(ph["diff"]), response=w(resp))
        self.resp_map.high = max(float(np.nanmax(resp)) if resp.size else 1.0, 1e-6)
        self.w_map.low, self.w_map.high = _sym(s.coupling)
        self.dw_map.low, self.dw_map.high = _sym(s.coupling_change)
        if self.edges is not None:
            self.edges.data.update(w=w(s.coupling), dw=w(s.coupling_change))
        elif self.n_nodes ** 2 <= 40000 or now - self._last_heavy >= 0.5:
            self._last_heavy = now
            self.mat.data.update(
                w=[coupling_matrix(self.n_nodes, s.src, s.dst, s.coupling)],
                dw=[coupling_matrix(self.n_nodes, s.src, s.dst, s.coupling_change)])
        # a handful of numbers: inline lists (each binary buffer is two websocket writes)
        self.out.data = {k: v.tolist() if isinstance(v, np.ndarray) else v
                         for k, v in output_points(s, sample).items()}
        if len(s.history) != self._hist_len:
            self._hist_len = len(s.history)
            self.curves.data = curve_data(s.history)
        if frame.confusion is not self._cm_id:
            self._cm_id = frame.confusion
            self.cm.data = confusion_data(frame.confusion, self.n_classes)


def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def _sym(values) -> tuple[float, float]:
    lim = symmetric_limit(values)
    return -lim, lim


def preview_data(net) -> tuple[dict, dict]:
    """Nodes (``x, y, color``) and bonds (``x0..y1``) of a Network for the small preview;
    bonds are left out past 5,000 (too many to see)."""
    c = net.coords.astype(np.float32)
    col = np.full(net.n_nodes, "#9e9e9e", dtype=object)
    col[net.input_nodes] = "#1f77b4"
    col[net.output_nodes] = "#d62728"
    nodes = {"x": c[:, 0], "y": c[:, 1], "color": list(col)}
    lattice = net.kind == "lattice"
    keep = slice(None) if net.n_edges <= 5000 else slice(0, 0)
    return nodes, bond_segments(c, net.src[keep], net.dst[keep], lattice)


__all__ = ["LiveViews", "PHASE_PALETTE", "COUPLING_PALETTE", "RESPONSE_PALETTE",
           "sample_row", "phase_values", "lattice_image", "symmetric_limit", "map_colors",
           "bond_segments", "coupling_matrix", "curve_data", "output_points",
           "confusion_data", "status_values", "geometry_key", "preview_data"]
