"""Image views of stacked (MNIST) networks: input image, hidden sheets, kernels, classes.

A stacked network (``engine/networks.py`` ``stacked``) is a clamped input sheet feeding
hidden sheets through local receptive fields, then a readout to one output per class.
The generic views draw it as a cloud of nodes; these views draw it as images:

- ``input``: the chosen batch row's input image (grey, the clamped phases mapped back to
  pixel intensities: phase ``-pi/2`` = 0 = black, ``+pi/2`` = 1 = white);
- ``sheets``: for every hidden sheet (column) and channel (row) its free phases (cyclic
  map) next to its response ``|dphi|/beta`` (per node, from the last update);
- ``kernels``: the receptive-field couplings, one panel per (sheet, channel, previous
  channel): the ``k x k`` kernel with weight sharing, else a mosaic of the per-site kernels
  of up to ``MOSAIC x MOSAIC`` evenly spaced sites (NaN gaps between them);
- ``classes``: the chosen row's output phase per class as a bar, its target as a dash and
  its nudged phase as a dot; the predicted class (largest ``sin phi``) is highlighted.

The first half is pure functions (arrays in, arrays out) tested in
``tests/app/test_image_views.py``; :class:`ImageViews` builds its Bokeh figures once,
re-points them when the network changes and afterwards only writes image columns.
Images are in sheet orientation: ``img[r, q]`` is row ``r`` (top first), column ``q``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from bokeh.models import ColumnDataSource, FixedTicker, HoverTool, LinearColorMapper, Range1d
from bokeh.palettes import Greys256

from xyprop.engine import Snapshot, build_network, wrap

from .figure_parts import (
    EMPTY_IMAGE,
    PHASE_TICK_LABELS,
    PHASE_TICKS,
    bare,
    colour_bar,
    fit_mapper,
    legend_below,
    new_figure,
)
from .plots import (
    COUPLING_PALETTE,
    NAN_COLOR,
    PHASE_PALETTE,
    RESPONSE_PALETTE,
    geometry_key,
    sample_row,
)

MOSAIC = 6  # per-site kernels of at most MOSAIC x MOSAIC sites per unshared panel
MAX_CHANNELS = 8  # channels drawn per sheet (more would make unreadably small panels)


# == pure data functions ==================================================================
@dataclass(frozen=True)
class StackedGeometry:
    """Where the sheets of a stacked network live, and which edge is which kernel entry.

    ``sheets``: ``(first_node, channels, side)`` per sheet, input sheet first (node
    ``first + (c * side + r) * side + q`` is channel c, row r, column q); ``window``,
    ``stride``, ``shared`` (weight sharing); ``fields[l - 1]``: int64 (C, Cp, s, s, k, k)
    edge id of the coupling from previous-sheet site (cp, r * stride + a, q * stride + b)
    to site (c, r, q) of hidden sheet ``l``.
    """

    sheets: tuple
    window: int
    stride: int
    shared: bool
    fields: tuple


def image_key(snap: Snapshot) -> tuple:
    """The image views are re-pointed when this changes (sharing keeps the edge count)."""
    c = snap.config
    return (*geometry_key(snap), snap.w.size, c.window, c.stride, c.channels, c.sheets,
            c.weight_sharing)


def receptive_index(src, dst, prev, cur, window: int, stride: int) -> np.ndarray:
    """Edge id (C, Cp, s, s, k, k) of every receptive-field coupling from sheet ``prev``
    into sheet ``cur`` (each ``(first, channels, side)``), found by the edge's geometry.

    Raises ``ValueError`` if an entry has no edge (not the stacked layout described).
    """
    (f0, c0, s0), (f1, c1, s1), k = prev, cur, window
    src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    n0, n1 = c0 * s0 * s0, c1 * s1 * s1
    fwd = (src >= f0) & (src < f0 + n0) & (dst >= f1) & (dst < f1 + n1)
    bwd = (dst >= f0) & (dst < f0 + n0) & (src >= f1) & (src < f1 + n1)
    e = np.flatnonzero(fwd | bwd)
    lo, hi = np.where(fwd[e], src[e], dst[e]), np.where(fwd[e], dst[e], src[e])
    cp, rem = np.divmod(lo - f0, s0 * s0)
    rp, qp = np.divmod(rem, s0)
    c, rem = np.divmod(hi - f1, s1 * s1)
    r, q = np.divmod(rem, s1)
    a, b = rp - r * stride, qp - q * stride
    idx = np.full((c1, c0, s1, s1, k, k), -1, np.int64)
    ok = (a >= 0) & (a < k) & (b >= 0) & (b < k)
    idx[c[ok], cp[ok], r[ok], q[ok], a[ok], b[ok]] = e[ok]
    if not ok.all() or (idx < 0).any():
        raise ValueError("edges between the sheets are not window x window receptive fields")
    return idx


def stacked_geometry(snap: Snapshot) -> StackedGeometry | None:
    """The sheets of ``snap``'s network (rebuilt from its config), or None if it is not a
    stacked network or the rebuilt edges differ from the snapshot's."""
    if snap.kind != "stacked":
        return None
    cfg = snap.config
    try:
        net = build_network(cfg, snap.input_nodes.size, snap.output_nodes.size)
    except ValueError:
        return None
    if not (net.n_edges == snap.src.size and np.array_equal(net.src, snap.src)
            and np.array_equal(net.dst, snap.dst)) or len(net.sheets) < 2:
        return None
    fields = tuple(receptive_index(snap.src, snap.dst, net.sheets[l - 1], net.sheets[l],
                                   cfg.window, cfg.stride) for l in range(1, len(net.sheets)))
    return StackedGeometry(tuple(net.sheets), cfg.window, cfg.stride,
                           bool(cfg.weight_sharing), fields)


def sheet_nodes(sheet, channel: int) -> np.ndarray:
    """Node ids (side, side) of one channel of a sheet ``(first, channels, side)``."""
    first, _, side = sheet
    return first + channel * side * side + np.arange(side * side).reshape(side, side)


def input_image(snap: Snapshot, geo: StackedGeometry, sample: int) -> np.ndarray:
    """Pixel intensities in [0, 1] (side, side) float32 of the chosen batch row's input,
    from its clamped phases (``(phi + pi/2) / pi``); NaN before the first step."""
    nodes = sheet_nodes(geo.sheets[0], 0)
    r = sample_row(snap, sample)
    if r is None:
        return np.full(nodes.shape, np.nan, np.float32)
    return ((snap.free_phases[r][nodes] + np.pi / 2) / np.pi).astype(np.float32)


def mosaic_sites(side: int, m: int = MOSAIC) -> np.ndarray:
    """At most ``m`` evenly spaced site indices along one side (first and last included)."""
    return np.unique(np.round(np.linspace(0, side - 1, min(side, m))).astype(np.int64))


def kernel_gather(geo: StackedGeometry, sheet: int, c: int, cp: int) -> np.ndarray:
    """Edge ids (H, W) of one kernel panel, -1 in the gaps: with sharing the ``k x k``
    kernel (every site reads the same parameters, site (0, 0) stands for all), else the
    per-site kernels of ``mosaic_sites`` rows x columns, one empty pixel between them."""
    idx, k = geo.fields[sheet - 1][c, cp], geo.window
    if geo.shared:
        return idx[0, 0].copy()
    pick = mosaic_sites(idx.shape[0])
    m, p = pick.size, k + 1
    out = np.full((m * p - 1, m * p - 1), -1, np.int64)
    for i, r in enumerate(pick):
        for j, q in enumerate(pick):
            out[i * p:i * p + k, j * p:j * p + k] = idx[r, q]
    return out


def gather(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``values[idx]`` as float32, NaN where ``idx < 0``: ``values`` (P,), ``idx`` any
    shape of indices into it; the result has ``idx``'s shape."""
    out = np.asarray(values)[np.maximum(idx, 0)].astype(np.float32)
    out[idx < 0] = np.nan
    return out


def class_outputs(snap: Snapshot, sample: int) -> dict[str, np.ndarray]:
    """Per class ``o``: ``phase`` (free, wrapped), ``nudged``, ``target`` of the chosen row,
    ``pred`` (bool, the predicted class: largest ``sin phase``) and ``true`` (bool)."""
    out = snap.output_nodes
    r = sample_row(snap, sample)
    nan = np.full(out.size, np.nan)
    if r is None:
        return {"phase": nan, "nudged": nan, "target": nan,
                "pred": np.zeros(out.size, bool), "true": np.zeros(out.size, bool)}
    f, t = wrap(snap.free_phases[r, out]), snap.batch_targets[r]
    return {"phase": f, "nudged": wrap(snap.nudged_phases[r, out]), "target": t,
            "pred": np.arange(out.size) == np.argmax(np.sin(f)),
            "true": np.arange(out.size) == np.argmax(t)}


def stacked_counts(net) -> dict:
    """Couplings and coupling parameters of a stacked Network by kind of edge: lists per
    hidden sheet ``receptive`` / ``receptive_params`` / ``intra``, and ``readout``."""
    lo = np.minimum(net.layer[net.src], net.layer[net.dst])
    hi = np.maximum(net.layer[net.src], net.layer[net.dst])
    hidden = range(1, len(net.sheets))
    rec = [(lo == l - 1) & (hi == l) for l in hidden]
    return {"sides": [(c, s) for _, c, s in net.sheets],
            "receptive": [int(m.sum()) for m in rec],
            "receptive_params": [int(np.unique(net.param_index[m]).size) for m in rec],
            "intra": [int(((lo == l) & (hi == l)).sum()) for l in hidden],
            "readout": int((hi == len(net.sheets)).sum()), "params": int(net.n_params)}


def counts_text(net) -> str:
    """One line for the couplings pane, e.g. ``sheets 28x28 -> 23x23 | receptive fields
    19,044 couplings (19,044 parameters) | readout 5,290 | coupling parameters 24,334``."""
    c = stacked_counts(net)
    sides = " -> ".join(f"{s}x{s}" + (f"x{ch}" if ch > 1 else "") for ch, s in c["sides"])
    rec = f"{sum(c['receptive']):,} couplings ({sum(c['receptive_params']):,} parameters)"
    intra = f" | inside sheets {sum(c['intra']):,}" if sum(c["intra"]) else ""
    return (f"sheets {sides} | receptive fields {rec}{intra} | readout {c['readout']:,} | "
            f"coupling parameters {c['params']:,}")


# == Bokeh figures ========================================================================
def _grid_layout(f, cells, px: int, title_px: int = 16, gap: float = 0.12):
    """Unit panels at grid ``cells`` (col, row) of figure ``f`` (y flipped: row 0 on top),
    ``px`` pixels each, a title strip above each. Returns (x, y_top, title_y) per cell."""
    t = title_px / px
    px_x, px_y = 1 + gap, 1 + gap + t
    ncol = max((c for c, _ in cells), default=0) + 1
    nrow = max((r for _, r in cells), default=0) + 1
    x = np.array([c * px_x for c, _ in cells], np.float64)
    y = np.array([r * px_y + t for _, r in cells], np.float64)
    width, height = ncol * px_x - gap, nrow * px_y - gap
    f.x_range.update(start=0.0, end=float(width))
    f.y_range.update(start=float(height), end=0.0)  # flipped
    f.frame_width, f.frame_height = round(width * px), round(height * px)
    return x, y, y - t / 2


def _panels(x, y, images):
    """Image-glyph columns for panels at lower-left corners ``x, y`` (K,) showing
    ``images`` (K arrays), each one unit square."""
    n = len(images)
    return {"image": images, "x": x.tolist(), "y": y.tolist(), "dw": [1.0] * n,
            "dh": [1.0] * n}


_EMPTY = {"image": [], "x": [], "y": [], "dw": [], "dh": []}


class ImageViews:
    """Figures ``input``, ``sheets``, ``kernels``, ``classes`` of one session (see module
    docstring); ``active`` is False (nothing drawn) unless the network is stacked.

    ``configure(snap)`` sets panel positions, sizes and node / edge gathers; ``update``
    writes images. While running, input, sheets and classes refresh at most every
    ``SHEETS_DT`` s and kernels every ``KERNELS_DT`` s (each redrawn figure costs the
    browser a repaint); a frame that is not ``running`` refreshes everything at once.
    """

    SHEETS_DT, KERNELS_DT = 0.25, 0.5

    def __init__(self):
        cmap = functools.partial(LinearColorMapper, nan_color=NAN_COLOR)
        self.grey_map = cmap(Greys256, low=0.0, high=1.0)
        self.phase_map = cmap(PHASE_PALETTE, low=-np.pi, high=np.pi)
        self.resp_map = cmap(RESPONSE_PALETTE, low=0.0, high=1.0)
        self.w_map = cmap(COUPLING_PALETTE, low=-1.0, high=1.0)
        self.inp = ColumnDataSource(dict(_EMPTY))
        self.phases = ColumnDataSource(dict(_EMPTY))
        self.resp = ColumnDataSource(dict(_EMPTY))
        self.kern = ColumnDataSource(dict(_EMPTY))
        self.titles = {k: ColumnDataSource({"x": [], "y": [], "text": []})
                       for k in ("sheets", "kernels")}
        self.cls = ColumnDataSource({k: [] for k in ("x", "phase", "nudged", "target",
                                                     "color", "label")})
        f = {"input": self._image_fig("Input", [(self.inp, self.grey_map)], None),
             "sheets": self._image_fig("", [(self.phases, self.phase_map),
                                            (self.resp, self.resp_map)], "sheets"),
             "kernels": self._image_fig("Kernels",
                                        [(self.kern, self.w_map)], "kernels"),
             "classes": self._class_fig()}
        f["input"].frame_width = f["input"].frame_height = 150
        self._twins = {
            "phase": colour_bar(f["sheets"], self.phase_map, "phase",
                                FixedTicker(ticks=PHASE_TICKS), PHASE_TICK_LABELS),
            "resp": colour_bar(f["sheets"], self.resp_map, "response"),
            "w": colour_bar(f["kernels"], self.w_map, "w")}
        for name, fig in f.items():  # hooks for browser tests
            fig.css_classes = [f"xy-view-{name}"]
        self.figures = f
        self.key, self.geo, self.active, self.caption = None, None, False, ""

    def _image_fig(self, title, layers, titles):
        f = bare(new_figure(title, 150, 150, x_range=Range1d(0, 1), y_range=Range1d(1, 0)))
        for src, mapper in layers:
            r = f.image(image="image", x="x", y="y", dw="dw", dh="dh", source=src,
                        color_mapper=mapper)
            f.add_tools(HoverTool(renderers=[r], tooltips=[("value", "@image{0.000}")]))
        if titles:
            f.text("x", "y", text="text", source=self.titles[titles], text_font_size="8pt",
                   text_baseline="middle", text_color="#333333", text_font_style="bold")
        return f

    def _class_fig(self):
        f = new_figure("Outputs by class", 260, 170, x_range=Range1d(-0.6, 9.6),
                 y_range=Range1d(-3.4, 3.4))
        f.vbar("x", 0.7, "phase", 0, source=self.cls, color="color", legend_label="free")
        f.scatter("x", "target", source=self.cls, marker="dash", size=18, line_width=3,
                  color="#222222", legend_label="target")
        f.scatter("x", "nudged", source=self.cls, size=6, color="#222222", fill_alpha=0,
                  legend_label="nudged")
        f.yaxis.ticker = FixedTicker(ticks=PHASE_TICKS)
        f.yaxis.major_label_overrides = PHASE_TICK_LABELS
        f.yaxis.axis_label = "output phase"
        f.xaxis.axis_label = "class"
        f.add_tools(HoverTool(tooltips=[("class", "@label"), ("phase", "@phase{0.000}"),
                                        ("target", "@target{0.000}")]))
        legend_below(f)
        return f

    # -- geometry --------------------------------------------------------------------------
    def configure(self, snap: Snapshot) -> None:
        """Point the figures at ``snap``'s network (inactive unless it is stacked)."""
        self.key = image_key(snap)
        try:
            self.geo = geo = stacked_geometry(snap)
        except ValueError:  # edges not in the documented layout: show nothing wrong
            self.geo = geo = None
        self.active = geo is not None
        self._last = {"sheets": -1e9, "kernels": -1e9}
        self._title = None
        if not self.active:
            for src in (self.inp, self.phases, self.resp, self.kern):
                src.data = dict(_EMPTY)
            return
        self.inp.data = _panels(np.zeros(1), np.zeros(1), [EMPTY_IMAGE])
        f = self.figures["input"]
        f.x_range.update(start=0.0, end=1.0)
        f.y_range.update(start=1.0, end=0.0)
        # hidden sheets: one column pair (phases | response) per sheet, a row per channel
        maps, cells = [], []
        for l, sheet in enumerate(geo.sheets[1:], 1):
            for c in range(min(sheet[1], MAX_CHANNELS)):
                maps.append((f"sheet {l} ch {c}", sheet_nodes(sheet, c)))
                cells += [(2 * (l - 1), c), (2 * (l - 1) + 1, c)]
        rows = max(r for _, r in cells) + 1
        px = int(np.clip(440 // rows, 60, 150))
        x, y, ty = _grid_layout(self.figures["sheets"], cells, px)
        self._maps = [m for _, m in maps]
        self._map_nodes = np.concatenate([m.ravel() for m in self._maps])
        nan = [np.full(m.shape, np.nan, np.float32) for m in self._maps]
        self.phases.data = _panels(x[0::2], y[0::2], nan)
        self.resp.data = _panels(x[1::2], y[1::2], [a.copy() for a in nan])
        text = [t for name, _ in maps for t in (f"{name} phases", "response")]
        self.titles["sheets"].data = {"x": x.tolist(), "y": ty.tolist(), "text": text}
        self._configure_kernels(geo)
        n = snap.output_nodes.size
        self.figures["classes"].x_range.update(start=-0.6, end=n - 0.4)
        self.figures["classes"].xaxis.ticker = FixedTicker(ticks=list(range(n)))
        for m in (self.resp_map, self.w_map):
            m.high = 1e-12  # refit at the next update

    def _configure_kernels(self, geo):
        gathers, cells, text, col = [], [], [], 0
        for l, (_, c1, _) in enumerate(geo.sheets[1:], 1):
            cp_n = min(geo.sheets[l - 1][1], MAX_CHANNELS)
            for cp in range(cp_n):
                for c in range(min(c1, MAX_CHANNELS)):
                    gathers.append(kernel_gather(geo, l, c, cp))
                    cells.append((col + cp, c))
                    text.append(f"s{l} ch{c} <- " + ("input" if l == 1 else f"ch{cp}"))
            col += cp_n
        rows = max(r for _, r in cells) + 1
        px = int(np.clip(480 // rows, 70, 100 if geo.shared else 150))
        x, y, ty = _grid_layout(self.figures["kernels"], cells, px)
        self._gathers = gathers
        self.kern.data = _panels(x, y, [np.full(g.shape, np.nan, np.float32)
                                        for g in gathers])
        self.titles["kernels"].data = {"x": x.tolist(), "y": ty.tolist(), "text": text}
        k = geo.window
        self.caption = (
            f"Kernels: {k}x{k} receptive fields, stride {geo.stride}; " + (
                "weight sharing: one kernel per (channel, previous channel)." if geo.shared
                else f"no sharing: one tile per site, for up to {MOSAIC}x{MOSAIC} evenly "
                "spaced sites.") + (
                f" Channels beyond the first {MAX_CHANNELS} of a sheet are not drawn."
                if max(ch for _, ch, _ in geo.sheets) > MAX_CHANNELS else ""))

    # -- updates ---------------------------------------------------------------------------
    def update(self, frame, sample: int = 0, now: float = 0.0) -> None:
        """Write ``frame`` into the sources (call under ``hold()`` on the event loop).

        Input, sheets and classes refresh together (they show one batch row: a digit next
        to the phases of another would mislead); kernels on their own, slower clock.
        """
        if not self.active:
            return
        s, final = frame.snapshot, frame.state != "running"
        if final or now - self._last["sheets"] >= self.SHEETS_DT:
            self._last["sheets"] = now
            self._draw_sample(s, sample)
        if final or now - self._last["kernels"] >= self.KERNELS_DT:
            self._last["kernels"] = now
            imgs = [gather(s.coupling, g) for g in self._gathers]
            self.kern.data.update(image=imgs)
            fit_mapper(self.w_map, self._twins["w"], np.concatenate([i.ravel() for i in imgs]))

    def _draw_sample(self, s: Snapshot, sample: int) -> None:
        r = sample_row(s, sample)
        self.inp.data.update(image=[input_image(s, self.geo, sample)])
        title = "Input" if r is None else f"Input, class {int(np.argmax(s.batch_targets[r]))}"
        if title != self._title:
            self._title = self.figures["input"].title.text = title
        resp = s.response.astype(np.float32)
        ph = (wrap(s.free_phases[r]).astype(np.float32) if r is not None
              else np.full(s.h.size, np.nan, np.float32))
        self.phases.data.update(image=[ph[m] for m in self._maps])
        self.resp.data.update(image=[resp[m] for m in self._maps])
        fit_mapper(self.resp_map, self._twins["resp"], resp[self._map_nodes], symmetric=False)
        c = class_outputs(s, sample)
        color = np.where(c["pred"], np.where(c["true"], "#2ca02c", "#d62728"), "#9ecae1")
        self.cls.data = {"x": list(range(c["phase"].size)), "phase": c["phase"].tolist(),
                         "nudged": c["nudged"].tolist(), "target": c["target"].tolist(),
                         "color": color.tolist(),
                         "label": [f"{k}{' (predicted)' if p else ''}"
                                   for k, p in enumerate(c["pred"])]}


__all__ = ["ImageViews", "StackedGeometry", "stacked_geometry", "receptive_index",
           "sheet_nodes", "input_image", "mosaic_sites", "kernel_gather", "gather",
           "class_outputs", "stacked_counts", "counts_text", "image_key"]
