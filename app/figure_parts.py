"""Small Bokeh building blocks shared by the live views (plots.py, image_views.py).

Figures without tools, colour bars drawn from a twin mapper, sticky colour limits, the
phase-axis ticks: each written once here.
"""

from __future__ import annotations

import numpy as np
from bokeh.models import BasicTicker, ColorBar, LinearColorMapper, PrintfTickFormatter
from bokeh.plotting import figure

PI = "\u03c0"
#: ticks and labels of a phase axis or colour bar, -pi .. pi
PHASE_TICKS = [-np.pi, -np.pi / 2, 0, np.pi / 2, np.pi]
PHASE_TICK_LABELS = dict(zip(PHASE_TICKS, [f"-{PI}", f"-{PI}/2", "0", f"{PI}/2", PI],
                             strict=True))
#: a 1 x 1 all-NaN image: the data of an image glyph with nothing to show yet
EMPTY_IMAGE = np.full((1, 1), np.nan, np.float32)


def symmetric_limit(values: np.ndarray, floor: float = 1e-12) -> float:
    """``max |v|`` over finite values (at least ``floor``): colour limits are (-lim, lim)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(max(np.abs(v).max(), floor)) if v.size else 1.0


def new_figure(title, w, h, **kw):
    """A w x h px plotting area (frame); no pan/zoom tools: a live view is not dragged."""
    f = figure(title=title, frame_width=w, frame_height=h, toolbar_location=None, tools="",
               **kw)
    f.title.text_font_size = "11pt"
    return f


def colour_bar(fig, mapper, title, ticker=None, labels=None) -> LinearColorMapper:
    """A colour bar for ``mapper``, drawn from a twin mapper that no glyph uses.

    BokehJS redraws a colour bar's gradient whenever its mapper sees new glyph data, i.e.
    on every frame; the twin only changes when the limits do (keep them equal: ``fit_mapper``).
    """
    twin = LinearColorMapper(palette=mapper.palette, low=mapper.low, high=mapper.high)
    fig.add_layout(ColorBar(color_mapper=twin, width=10, title=title or None,
                            ticker=ticker or BasicTicker(desired_num_ticks=5),
                            # short labels: the bar's width is fixed when first drawn
                            formatter=PrintfTickFormatter(format="%.2g"),
                            major_label_overrides=labels or {}), "right")
    return twin


def legend_below(f) -> None:
    """A compact one-line legend under the plot, where it hides no data."""
    f.legend.label_text_font_size = "8pt"
    f.legend.orientation = "horizontal"
    f.legend.padding = f.legend.spacing = 2
    f.add_layout(f.legend[0], "below")


def bare(f):
    """No axes, grid or outline: the geometry speaks for itself."""
    f.axis.visible = False
    f.grid.visible = False
    f.outline_line_color = None
    return f


def colour_limit(current: float, values, slack: float = 0.5, headroom: float = 1.1) -> float:
    """Sticky colour limit: grow at once to cover ``max |values|``, shrink only when that
    falls below ``slack`` of the current limit. Steady colour bars are easier to read and
    cost no message per frame."""
    lim = symmetric_limit(values)
    if lim > current or lim < slack * current:
        return lim * headroom
    return current


def fit_mapper(mapper, twin, values, symmetric: bool = True) -> None:
    """Move ``mapper`` and its colour-bar ``twin`` to ``colour_limit`` of ``values``:
    (-lim, lim), or (0, lim) when not ``symmetric``."""
    high = colour_limit(mapper.high, values)
    if high != mapper.high:
        for m in (mapper, twin):
            m.update(low=-high if symmetric else 0.0, high=high)
