"""Snapshot -> plot data, and the live Bokeh figures of one dashboard session.

First pure functions (arrays in, arrays or column dicts out; tested in
``tests/app/test_plots.py``, reused by exports); then :class:`LiveViews`, which builds every
figure of a session once and afterwards only replaces ``ColumnDataSource`` columns and
colour-mapper limits (well under a millisecond per view; a HoloViews rebuild costs 10-20 ms).

Geometry conventions: node ``i`` is drawn at ``coords[i] = (x, y)``; for lattices ``x`` is
the column and ``y`` the row, and the y axis is flipped so the input row is on top.
"""

from __future__ import annotations

import functools
import math

import colorcet as cc
import numpy as np
from bokeh.models import (
    ColumnDataSource,
    FixedTicker,
    HoverTool,
    Label,
    LinearColorMapper,
    Range1d,
)
from bokeh.palettes import Category10
from bokeh.transform import dodge

from xyprop.engine import Snapshot, wrap

from .figure_parts import (
    EMPTY_IMAGE,
    PHASE_TICK_LABELS,
    PHASE_TICKS,
    bare,
    colour_bar,
    colour_limit,
    fit_mapper,
    legend_below,
    new_figure,
    symmetric_limit,
)

PHASE_PALETTE = list(cc.colorwheel)  # cyclic: -pi and pi get the same colour
COUPLING_PALETTE = list(cc.coolwarm)  # diverging, used with symmetric limits
DIFF_PALETTE = list(cc.gwv)  # diverging, white at zero: phase shifts are small
RESPONSE_PALETTE = list(cc.CET_L18)  # white (no response) to dark red
CONFUSION_PALETTE = list(cc.blues)
NAN_COLOR = "#e6e6e6"


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


def sample_label(snap: Snapshot, sample: int) -> str:
    """Which training sample a batch row is, and its class, e.g. ``sample #37, class 2``."""
    r = sample_row(snap, sample)
    if r is None:
        return "no batch yet"
    t = snap.batch_targets[r]
    cls = int(t[0] > 0) if t.size == 1 else int(np.argmax(t))
    return f"training sample #{int(snap.batch_index[r])}, class {cls}"


def lattice_image(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Per-node values (N,) of a lattice -> image (rows, cols); node ``r*cols+c`` at [r, c]."""
    rows, cols = shape
    return np.asarray(values, np.float32).reshape(rows, cols)


def spread_columns(coords: np.ndarray) -> np.ndarray:
    """Drawing positions for layered / all-to-all nets: every column (layer) of nodes is
    spread over the height of the tallest one, so small layers stay readable next to a
    large input layer. Order within a column is kept."""
    xy = np.array(coords, dtype=np.float64)
    counts = np.unique(xy[:, 0], return_counts=True)
    half = (counts[1].max() - 1) / 2 if counts[1].size else 0.0
    for x, c in zip(*counts, strict=True):
        m = xy[:, 0] == x
        y = xy[m, 1]
        if c > 1 and y.max() > y.min():
            xy[m, 1] = (y - y.min()) / (y.max() - y.min()) * 2 * half - half
    return xy


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


class LiveViews:
    """All live figures of one session; built once, re-pointed at new geometries.

    ``figures`` maps names to Bokeh figures: ``phases`` (panels free | nudged | nudged -
    free | response), ``couplings`` (w | change of w), ``loss``, ``accuracy``, ``outputs``,
    ``confusion``. Panels share a figure: the browser's cost is mostly per figure redrawn.
    Each figure holds the glyphs for both drawings (site images and bond segments on
    lattices; dots and a coupling matrix otherwise); ``configure(snap)`` only switches
    visibility, offsets, ranges and sizes, because swapping Bokeh models in a served page
    makes Panel walk the whole document (about 0.3 s per figure). ``update`` writes data.
    """

    SIDE = 175  # px of one geometry panel
    GAP = 0.15  # space between panels, in panel widths
    LABEL_PX = 22  # room above the panels for their titles
    MATRIX_MAX = 400  # more nodes: draw bonds, not an N x N matrix (MNIST would be 1.7M cells)
    HEAVY = 40000  # cells (matrix) or bonds beyond which a view refreshes at most 2x a second
    #: older per-panel names, kept as css classes of the figure that now holds the panel
    ALIASES = {"phase_free": "phases", "phase_nudged": "phases", "phase_diff": "phases",
               "response": "phases", "change": "couplings"}

    def __init__(self, snap: Snapshot):
        keys = ("x", "y", "i", "role", "size", "free", "nudged", "diff", "response")
        self.nodes = ColumnDataSource({k: [] for k in keys})
        self.empty = ColumnDataSource({k: [] for k in keys})  # for hidden renderers
        self.sites = ColumnDataSource({"x": [], "y": []})  # static positions (bond views)
        self.ins = ColumnDataSource({"x": [], "y": [], "size": []})
        self.outs = ColumnDataSource({"x": [], "y": [], "size": []})
        self.edges = ColumnDataSource({k: [] for k in ("x0", "y0", "x1", "y1", "w", "dw")})
        self.mat = ColumnDataSource({"w": [EMPTY_IMAGE], "dw": [EMPTY_IMAGE]})
        self.grid = ColumnDataSource({k: [EMPTY_IMAGE] for k in keys[5:]})  # lattice site images
        cmap = functools.partial(LinearColorMapper, nan_color=NAN_COLOR)
        self.phase_map = cmap(PHASE_PALETTE, low=-np.pi, high=np.pi)
        self.resp_map = cmap(RESPONSE_PALETTE, low=0, high=1)
        self.diff_map = cmap(DIFF_PALETTE, low=-1, high=1)
        self.w_map = cmap(COUPLING_PALETTE, low=-1, high=1)
        self.dw_map = cmap(COUPLING_PALETTE, low=-1, high=1)
        self._cells, self._dots, self._marks, self._segs, self._imgs = [], [], [], [], []
        self._shifts, self._labels, self._geo = [], [], []
        f = {"phases": self._node_figure("phases", [
            ("free", "Free equilibrium", self.phase_map),
            ("nudged", "Nudged (+beta)", self.phase_map),
            ("diff", "Nudged - free", self.diff_map),
            ("response", "Response |dphi|/beta", self.resp_map)])}
        self._twins = {
            "phase": colour_bar(f["phases"], self.phase_map, "phase",
                                FixedTicker(ticks=PHASE_TICKS), PHASE_TICK_LABELS),
            "diff": colour_bar(f["phases"], self.diff_map, "shift")}
        self._twins["resp"] = colour_bar(f["phases"], self.resp_map, "response")
        f["couplings"] = self._coupling_figure([("w", "Couplings w", self.w_map),
                                                ("dw", "Change of w, last update",
                                                 self.dw_map)])
        self._twins["w"] = colour_bar(f["couplings"], self.w_map, "w")
        self._twins["dw"] = colour_bar(f["couplings"], self.dw_map, "dw")
        self.curves = ColumnDataSource(curve_data([]))
        f["loss"] = self._curve_view("Loss", "loss")
        f["accuracy"] = self._curve_view("Accuracy", "accuracy")
        f["accuracy"].y_range = Range1d(-0.02, 1.02)
        self.out = ColumnDataSource(output_points(snap, 0))
        f["outputs"] = self._circle_view()
        self.cm = ColumnDataSource(confusion_data(None, 2))
        f["confusion"] = self._confusion_view()
        for name, fig in f.items():  # hooks for browser tests
            fig.css_classes = [f"xy-view-{name}"] + [
                f"xy-view-{a}" for a, t in self.ALIASES.items() if t == name]
        self.figures = f
        self.configure(snap)

    # -- figure builders -------------------------------------------------------------------
    def _shift(self, field, group, k):
        """``field`` moved right by panel ``k``'s offset (set in ``configure``)."""
        spec = dodge(field, 0.0)
        self._shifts.append((group, k, spec.transform))
        return spec

    def _title(self, f, group, k, text):
        label = Label(x=0, y=0, text=text, text_font_size="10.5pt", text_font_style="bold",
                      text_baseline="middle", text_color="#333333")
        f.add_layout(label)
        self._labels.append((group, k, label))

    def _node_figure(self, group, panels):
        f = bare(new_figure("", self.SIDE, self.SIDE, x_range=Range1d(0, 1), y_range=Range1d(0, 1)))
        self._geo.append((group, f))
        for k, (field, title, mapper) in enumerate(panels):
            x = self._shift("x", group, k)
            color = {"field": field, "transform": mapper}
            # a lattice panel is one image (one drawImage), not a rect per site
            cell = f.image(image=field, x=0, y=0, dw=1, dh=1, source=self.grid,
                           color_mapper=mapper)
            dot = f.scatter(x, "y", source=self.nodes, size="size", fill_color=color,
                            line_color="#555555", line_width=0.5)
            self._cells.append((group, k, cell))
            self._dots.append(dot)
            self._add_marks(f, group, k)
            self._title(f, group, k, title)
            f.add_tools(HoverTool(renderers=[dot], tooltips=[
                ("node", "@i (@role)"), (field, f"@{field}{{0.000}}")]),
                        HoverTool(renderers=[cell], tooltips=[(field, "@image{0.000}")]))
        return f

    def _add_marks(self, f, group, k):
        for src, marker in ((self.ins, "inverted_triangle"), (self.outs, "square")):
            r = f.scatter(self._shift("x", group, k), "y", source=src, marker=marker,
                          size="size", fill_alpha=0, line_color="black", line_width=2)
            self._marks.append((group, marker, r))

    def _coupling_figure(self, panels):
        f = bare(new_figure("", 2 * self.SIDE, self.SIDE, x_range=Range1d(0, 1),
                       y_range=Range1d(0, 1)))
        for k, (field, title, mapper) in enumerate(panels):
            seg = f.segment(self._shift("x0", "cpl", k), "y0", self._shift("x1", "cpl", k),
                            "y1", source=self.edges, line_width=3,
                            line_color={"field": field, "transform": mapper})
            img = f.image(image=field, x=0, y=0, dw=1, dh=1, source=self.mat,
                          color_mapper=mapper)
            dots = f.scatter(self._shift("x", "cpl", k), "y", source=self.sites, size=3,
                             color="#444444")
            self._segs.append((seg, dots))
            self._imgs.append((k, img))
            self._add_marks(f, "cpl", k)
            self._title(f, "cpl", k, title)
            f.add_tools(HoverTool(renderers=[seg], tooltips=[(field, f"@{field}{{0.0000}}")]))
        self.couplings_figure = f
        return f

    def _curve_view(self, title, what):
        f = new_figure(title, 290, 190)
        rs = []
        for split, c in (("train", "#1f77b4"), ("test", "#d62728")):
            col = f"{split}_{what}"
            f.line("epoch", col, source=self.curves, color=c, line_width=2, legend_label=split)
            rs.append(f.scatter("epoch", col, source=self.curves, color=c, size=3))
        f.add_tools(HoverTool(renderers=rs[:1], mode="vline", tooltips=[
            ("epoch", "@epoch{0}"), ("train", f"@train_{what}{{0.000}}"),
            ("test", f"@test_{what}{{0.000}}")]))
        f.xaxis.axis_label = "epoch"
        f.legend.location = "bottom_right" if what == "accuracy" else "top_right"
        f.legend.label_text_font_size = "8pt"
        f.legend.background_fill_alpha = 0.5
        return f

    def _circle_view(self):
        f = bare(new_figure("Output phases (this sample)", 200, 200, x_range=(-1.35, 1.35),
                       y_range=(-1.35, 1.35)))
        t = np.linspace(0, 2 * np.pi, 200)
        f.line(np.cos(t), np.sin(t), color="#999999")
        f.segment(0, 0, "x", "y", source=self.out, color="color", line_width=2)
        f.scatter("tx", "ty", source=self.out, size=16, fill_alpha=0, line_color="color",
                  line_width=2, legend_label="target")
        f.scatter("nx", "ny", source=self.out, marker="x", size=10, color="color",
                  legend_label="nudged")
        r = f.scatter("x", "y", source=self.out, size=10, color="color", legend_label="free")
        f.add_tools(HoverTool(renderers=[r], tooltips=[("", "@label"),
                                                       ("phase", "@phase{0.000}")]))
        legend_below(f)
        return f

    def _confusion_view(self):
        f = new_figure("Test set, last epoch", 200, 200, x_range=["0", "1"], y_range=["1", "0"])
        m = LinearColorMapper(CONFUSION_PALETTE, low=0, high=1)
        f.rect("pred", "true", 1, 1, source=self.cm, line_color="white",
               fill_color={"field": "frac", "transform": m})
        f.text("pred", "true", text="text", source=self.cm, text_align="center",
               text_baseline="middle", text_font_size="9pt", color="#202020")
        f.xaxis.axis_label, f.yaxis.axis_label = "predicted", "true"
        f.grid.visible = False
        return f

    # -- geometry --------------------------------------------------------------------------
    def configure(self, snap: Snapshot) -> None:
        """Point every figure at ``snap``'s network (nodes, bonds, classes)."""
        self.key = geometry_key(snap)
        self.lattice = lat = snap.kind == "lattice" and snap.shape is not None
        n = snap.h.shape[0]
        spread = snap.kind in ("layered", "all-to-all", "custom")
        xy = (spread_columns(snap.coords) if spread else snap.coords).astype(np.float32)
        self.n_nodes, self.n_classes = n, max(snap.output_nodes.size, 2)
        role = np.full(n, "hidden", dtype=object)
        role[snap.input_nodes], role[snap.output_nodes] = "input", "output"
        nan = np.full(n, np.nan, np.float32)
        # dot size by how crowded the node's column is (a 64-input layer vs 10 outputs)
        _, inv, counts = np.unique(xy[:, 0], return_inverse=True, return_counts=True)
        dots = np.clip(0.8 * self.SIDE / np.maximum(counts[inv], 1), 3, 14).astype(np.float32)
        self.nodes.data = {"x": xy[:, 0], "y": xy[:, 1], "i": np.arange(n),
                           "role": list(role), "size": dots, "free": nan, "nudged": nan,
                           "diff": nan, "response": nan}
        self.sites.data = {"x": xy[:, 0], "y": xy[:, 1]}
        if lat:
            rows, cols = snap.shape
            side = max(rows, cols)
            w, h = round(self.SIDE * cols / side), round(self.SIDE * rows / side)
            box = (-0.6, cols - 0.4, rows - 0.4, -0.6)  # y flipped: the input row on top
            marks = np.full(n, np.clip(0.55 * self.SIDE / side, 4, 24), np.float32)
        else:
            w = h = self.SIDE
            pad = 0.6 + 0.02 * counts.max()
            box = (xy[:, 0].min() - 0.6, xy[:, 0].max() + 0.6, xy[:, 1].min() - pad,
                   xy[:, 1].max() + pad)
            marks = dots * 1.4 + 3
        for src, idx in ((self.ins, snap.input_nodes), (self.outs, snap.output_nodes)):
            src.data = {"x": xy[idx, 0], "y": xy[idx, 1], "size": marks[idx]}
        for group, f in self._geo:
            self._layout(f, group, box, (w, h))
        # A hidden renderer still reprocesses its source on every change: detach it.
        for group, k, r in self._cells:
            pitch = [t.value for g, kk, t in self._shifts if g == group and kk == k][0]
            r.visible = lat
            if lat:
                r.glyph.update(x=-0.5 + pitch, y=-0.5, dw=snap.shape[1], dh=snap.shape[0])
        self.grid.data = {k: [EMPTY_IMAGE] for k in self.grid.data}
        for r in self._dots:
            r.visible, r.data_source = not lat, self.empty if lat else self.nodes
        for group, marker, r in self._marks:
            # Outlines on a dense column of dots would hide the colours; the layout shows
            # which column is which anyway.
            idx = snap.input_nodes if marker == "inverted_triangle" else snap.output_nodes
            r.glyph.line_width = 2 if lat else 1
            r.visible = lat if group == "cpl" else (lat or idx.size <= 24)
        self._configure_couplings(snap, lat, box, (w, h), float(marks[0]) if n else 8.0)
        cls = [str(i) for i in range(self.n_classes)]
        f = self.figures["confusion"]
        f.x_range.factors, f.y_range.factors = cls, cls[::-1]
        self.cm.data = confusion_data(None, self.n_classes)
        self._hist_len, self._cm_id = -1, None
        self._last_heavy = self._last_slow = -1e9
        for m in (self.diff_map, self.w_map, self.dw_map, self.resp_map):
            m.high = 1e-12  # refit at the next update

    def _layout(self, f, group, box, size):
        """Panels of ``f`` side by side, each showing ``box`` = (x0, x1, y_bottom, y_top)
        in ``size`` = (width, height) px, with a strip for their titles above."""
        x0, x1, yb, yt = box
        labels = [(k, lab) for g, k, lab in self._labels if g == group]
        pitch = (x1 - x0) * (1 + self.GAP)
        for g, k, t in self._shifts:
            if g == group:
                t.value = float(k * pitch)
        w, h = size
        up = (yt - yb) * self.LABEL_PX / h  # the title strip in data units
        for k, lab in labels:
            lab.update(x=float(x0 + k * pitch), y=float(yt + up / 2))
        f.x_range.update(start=float(x0), end=float(x1 + (len(labels) - 1) * pitch))
        f.y_range.update(start=float(yb), end=float(yt + up))
        f.frame_width = round(w * (len(labels) + (len(labels) - 1) * self.GAP))
        f.frame_height = h + self.LABEL_PX

    def _configure_couplings(self, snap, lat, box, size, mark):
        """Bonds as segments on lattices and on big sparse nets; else the N x N matrix."""
        n, e = self.n_nodes, snap.src.size
        self.bonds = bonds = lat or n > self.MATRIX_MAX
        if bonds:
            xy = np.c_[self.nodes.data["x"], self.nodes.data["y"]]  # as drawn (spread)
            seg = bond_segments(xy, snap.src, snap.dst, lat)
            self.edges.data = {**seg, "w": _f32(snap.coupling), "dw": _f32(snap.coupling_change)}
            self.mat.data = {"w": [EMPTY_IMAGE], "dw": [EMPTY_IMAGE]}
            lw = float(np.clip(60 / max(snap.shape), 1.5, 6)) if lat else (
                1.0 if e > 2000 else 2.0)
        else:
            self.edges.data = {k: np.zeros(0, np.float32) for k in self.edges.data}
            self.mat.data = {"w": [coupling_matrix(n, snap.src, snap.dst, snap.coupling)],
                             "dw": [coupling_matrix(n, snap.src, snap.dst,
                                                    snap.coupling_change)]}
            box, size, lw = (0, n, n, 0), (self.SIDE, self.SIDE), 1  # matrix: row 0 on top
        self._layout(self.couplings_figure, "cpl", box, size)
        pitch = (box[1] - box[0]) * (1 + self.GAP)
        for (seg, dots), (k, img) in zip(self._segs, self._imgs, strict=True):
            seg.visible, dots.visible, img.visible = bonds, bonds, not bonds
            seg.glyph.line_width = lw
            dots.glyph.size = max(mark * 0.3, 2)
            img.glyph.update(x=float(k * pitch), y=0.0, dw=n, dh=n)

    # -- updates ---------------------------------------------------------------------------
    def update(self, frame, sample: int = 0, now: float = 0.0, geometry: bool = True) -> None:
        """Write ``frame`` into the sources (call under ``hold()`` on the event loop).

        ``geometry=False`` leaves the node and bond views alone (hidden: stacked networks).

        Coupling views with more than ``HEAVY`` cells or bonds refresh at most twice a second,
        curves and confusion matrix at most four times; a frame that is not ``running`` (the
        last one for a while) refreshes everything.
        """
        s = frame.snapshot
        final = frame.state != "running"  # no newer frame will follow: draw everything
        if geometry:
            self._update_geometry(s, sample, final, now)
        # a handful of numbers: inline lists (each binary buffer is two websocket writes)
        self.out.data = {k: v.tolist() if isinstance(v, np.ndarray) else v
                         for k, v in output_points(s, sample).items()}
        # Epoch-level views: short epochs end many times a second, and every redraw of a
        # figure costs the browser several ms; four times a second is plenty.
        if final or now - self._last_slow >= 0.25:
            if len(s.history) != self._hist_len:
                self._hist_len, self._last_slow = len(s.history), now
                self.curves.data = curve_data(s.history)
            if frame.confusion is not self._cm_id:
                self._cm_id, self._last_slow = frame.confusion, now
                self.cm.data = confusion_data(frame.confusion, self.n_classes)


    def _update_geometry(self, s: Snapshot, sample: int, final: bool, now: float) -> None:
        """Node phases, responses and couplings of ``s``; ``final``: no newer frame follows,
        so the throttled coupling views are drawn too."""
        w = _f32
        ph = phase_values(s, sample)
        resp = s.response.astype(np.float32)
        if self.lattice:  # images (rows, cols); row 0 is drawn on top (flipped y range)
            self.grid.data.update({k: [lattice_image(v, s.shape)] for k, v in
                                   (*ph.items(), ("response", resp))})
        else:
            self.nodes.data.update(free=w(ph["free"]), nudged=w(ph["nudged"]),
                                   diff=w(ph["diff"]), response=w(resp))
        tw = self._twins
        fit_mapper(self.resp_map, tw["resp"], resp, symmetric=False)
        fit_mapper(self.diff_map, tw["diff"], ph["diff"])
        fit_mapper(self.w_map, tw["w"], s.coupling)
        fit_mapper(self.dw_map, tw["dw"], s.coupling_change)
        heavy = (s.src.size if self.bonds else self.n_nodes ** 2) > self.HEAVY
        if heavy and now - self._last_heavy < 0.5 and not final:
            pass  # big coupling views: twice a second is enough for the eye
        elif self.bonds:
            self._last_heavy = now
            self.edges.data.update(w=w(s.coupling), dw=w(s.coupling_change))
        else:
            self._last_heavy = now
            self.mat.data.update(
                w=[coupling_matrix(self.n_nodes, s.src, s.dst, s.coupling)],
                dw=[coupling_matrix(self.n_nodes, s.src, s.dst, s.coupling_change)])


def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


__all__ = ["LiveViews", "PHASE_PALETTE", "COUPLING_PALETTE", "RESPONSE_PALETTE",
           "DIFF_PALETTE", "sample_row", "sample_label", "phase_values", "lattice_image",
           "symmetric_limit", "colour_limit", "map_colors",
           "bond_segments", "coupling_matrix", "spread_columns", "curve_data", "output_points",
           "confusion_data", "status_values", "geometry_key"]
