"""The dashboard of one browser session: sidebar controls, live views, periodic refresh.

Hooks for browser tests (stable names and CSS classes; Bokeh and Panel render inside
shadow roots, which Playwright's CSS and role locators pierce):

- buttons, by accessible name: ``Train`` (reads ``Pause`` while running), ``Step``,
  ``Reset``, ``New seed``; downloads ``Snapshot (.npz)``, ``Metrics (.csv)``,
  ``Config (.toml)``. No other control's name contains these words.
- ``.xy-epoch``: text ``Epoch 12 / 300``; ``.xy-status``: ``running | step 340 | 812
  samples/s | 38 relaxation sweeps | 0 failures | accuracy ...``, with the state alone in
  ``.xy-state`` (idle, running, paused, finished, error);
- ``.xy-couplings`` (inner text ``.xy-couplings-text``): ``480 couplings | 256 nodes ...``
  for the settings as they stand (before any training); ``.xy-preview``: the graph preview;
- ``.xy-alert-text``: an error (settings, upload or training), absent when there is none;
  ``.xy-notice-text``: ``Reset needed to apply: rows, cols`` (or another notice);
- setting widgets carry css class ``xy-field-<config field>`` (e.g. ``.xy-field-lr input``)
  and their label as name; the upload input is ``.xy-upload input[type=file]`` (``.npz``
  snapshot, ``.toml`` / ``.json`` config; recognised by content);
- views: Bokeh figures with css class ``.xy-view-<name>`` for the names in
  ``LiveViews.figures`` (``phases``: panels free | nudged | nudged - free | response;
  ``couplings``: w | change; ``loss``, ``accuracy``, ``outputs``, ``confusion``); the
  panel names ``phase_free``, ``phase_nudged``, ``phase_diff``, ``response`` and ``change``
  are extra classes of the figure holding the panel. ``.xy-sample`` selects the batch row
  shown, ``.xy-sample-info`` names it;
- stacked (MNIST) networks only: the card ``.xy-images`` (hidden otherwise) with the
  figures ``.xy-view-input`` (the sample's input image), ``.xy-view-sheets`` (free phases |
  response of every hidden sheet and channel), ``.xy-view-kernels`` (receptive-field
  kernels, caption ``.xy-images-caption``) and ``.xy-view-classes`` (output phase per
  class); ``.xy-stacked-counts`` in ``.xy-couplings``: couplings and coupling parameters
  by kind (receptive fields, inside sheets, readout);
- ``Dashboard.exports``: the column of download buttons (``export.py`` may add more);
- in-process servers: ``session.ACTIVE`` holds the live dashboards, each with ``runner``,
  ``settings``, ``views`` and ``stats`` (ticks, frames drawn, seconds spent drawing).

Everything that touches Bokeh runs on the session's event loop: the runner thread only
fills its one-frame mailbox, and ``refresh`` (a periodic callback) draws the newest frame.
"""

from __future__ import annotations

import functools
import io
import time
import weakref
from pathlib import Path

import numpy as np
import panel as pn
from bokeh.models import CustomJS, DataRange1d, Div
from bokeh.plotting import figure

from xyprop.engine import Config, build_network, load_snapshot, load_task, metrics_csv

from .export import Frame, FrameRecorder, gif_bytes, html_bytes, png_bytes
from .image_views import ImageViews, counts_text, image_key
from .plots import (
    LiveViews,
    bond_segments,
    geometry_key,
    sample_label,
    spread_columns,
    status_values,
)
from .runner import Runner
from .settings import FIELDS, LIVE, Settings, sync_url

#: Dashboards alive in this process (for benchmarks and in-process tests).
ACTIVE: weakref.WeakSet = weakref.WeakSet()

CSS = Path(__file__).resolve().parents[1] / "assets" / "xyprop.css"

_WIDGETS = {  # field: (widget class, extra keyword arguments)
    "task": (pn.widgets.Select, {}), "arch": (pn.widgets.Select, {}),
    "rows": (pn.widgets.IntInput, {"start": 1}), "cols": (pn.widgets.IntInput, {"start": 1}),
    "neighbourhood": (pn.widgets.Select, {}),
    "skip_length": (pn.widgets.IntInput, {"start": 0}),
    "skip_count": (pn.widgets.IntInput, {"start": 0}),
    "hidden": (pn.widgets.IntInput, {"start": 1}), "layers": (pn.widgets.TextInput, {}),
    "window": (pn.widgets.IntInput, {"start": 1}), "stride": (pn.widgets.IntInput, {"start": 1}),
    "channels": (pn.widgets.IntInput, {"start": 1}),
    "sheets": (pn.widgets.IntInput, {"start": 1}),
    "weight_sharing": (pn.widgets.Checkbox, {}), "intra": (pn.widgets.Select, {}),
    "readout": (pn.widgets.Select, {}),
    "edge_file": (pn.widgets.TextInput, {}), "data_dir": (pn.widgets.TextInput, {}),
    "beta": (pn.widgets.FloatInput, {"step": 0.01, "start": 0.0}),
    "nudging": (pn.widgets.Select, {}), "cost": (pn.widgets.Select, {}),
    "solver": (pn.widgets.Select, {}), "m_init": (pn.widgets.IntInput, {"start": 1}),
    "lr": (pn.widgets.FloatInput, {"step": 0.005, "start": 0.0}),
    "optimizer": (pn.widgets.Select, {}), "batch_size": (pn.widgets.IntInput, {"start": 1}),
    "epochs": (pn.widgets.IntInput, {"start": 0}),
    "lr_decay": (pn.widgets.FloatInput, {"step": 0.001, "start": 0.0}),
    "stop_at_accuracy": (pn.widgets.FloatInput, {"step": 0.01, "start": 0.0, "end": 1.0}),
    "seed": (pn.widgets.IntInput, {"start": 0}),
    "init": (pn.widgets.Select, {}), "init_scale": (pn.widgets.FloatInput, {"step": 0.1}),
}
_GROUPS = (  # sidebar cards: (title, rows of fields)
    ("Task and network", (("task", "arch"), ("rows", "cols"), ("neighbourhood",),
                          ("skip_length", "skip_count"), ("hidden",), ("layers",),
                          ("window", "stride"), ("channels", "sheets"), ("intra", "readout"),
                          ("weight_sharing",),
                          ("edge_file",), ("data_dir",))),
    ("Physics", (("beta", "nudging"), ("cost", "solver"), ("m_init",))),
    ("Optimiser and schedule", (("lr", "optimizer"), ("batch_size", "epochs"),
                  ("lr_decay", "stop_at_accuracy"), ("seed", "init"), ("init_scale",))),
)
_VISIBLE = {  # field: shown only when this holds
    "rows": lambda s: s.arch == "lattice", "cols": lambda s: s.arch == "lattice",
    "neighbourhood": lambda s: s.arch == "lattice",
    "skip_length": lambda s: s.arch == "lattice", "skip_count": lambda s: s.arch == "lattice",
    "hidden": lambda s: s.arch == "all-to-all", "layers": lambda s: s.arch == "layered",
    "edge_file": lambda s: s.arch == "custom", "data_dir": lambda s: s.task == "mnist",
    **{f: (lambda s: s.arch == "stacked") for f in ("window", "stride", "channels", "sheets",
                                                    "weight_sharing", "intra", "readout")},
}


_REPLACE_URL = ("if (cb_obj.text) window.history.replaceState(window.history.state, '', "
                "window.location.pathname + cb_obj.text + window.location.hash)")
_STATE_COLORS = {"running": "#2e7d32", "paused": "#b26a00", "finished": "#1f4e8c",
                 "error": "#c62828", "idle": "#555555"}


@functools.lru_cache(maxsize=8)
def task_dims(task: str) -> tuple[int, int]:
    """(inputs, outputs) of a task, for the network preview before any training."""
    if task == "mnist":  # 28x28 pixels, 10 digits; avoids reading MNIST just to count
        return 784, 10
    t = load_task(task)
    return t.n_inputs, t.n_outputs


def preview_data(net) -> tuple[dict, dict]:
    """Nodes (``x, y, color``: (N,) each) and bonds (``x0, y0, x1, y1``: (E,) each) of a
    Network for the small preview; bonds are left out past 5,000 (too many to see)."""
    lattice = net.kind == "lattice"
    spread = net.kind in ("layered", "all-to-all", "custom")
    c = (spread_columns(net.coords) if spread else net.coords).astype(np.float32)
    col = np.full(net.n_nodes, "#9e9e9e", dtype=object)
    col[net.input_nodes] = "#1f77b4"
    col[net.output_nodes] = "#d62728"
    nodes = {"x": c[:, 0], "y": c[:, 1], "color": list(col)}
    keep = slice(None) if net.n_edges <= 5000 else slice(0, 0)
    return nodes, bond_segments(c, net.src[keep], net.dst[keep], lattice)


class Dashboard(pn.viewable.Viewer):
    """Controls, views and the runner of one browser session (see module docstring).

    Parameters
    ----------
    config : Config, optional   initial setup (otherwise defaults, then the page URL)
    periodic : bool   start the refresh callback (needs a served document)
    period_ms : int   refresh period (80 ms: 12.5 frames per second; each frame costs the
        browser a repaint of every live figure, about 5 ms of CPU each)
    """

    def __init__(self, config: Config | None = None, *, periodic: bool = True,
                 period_ms: int = 80, **params):
        super().__init__(**params)
        self.settings = Settings()
        self._settings_error: str | None = None
        if config is not None:
            self.settings.from_config(config)
        self.location = pn.state.location  # None outside a served page
        sync_url(self.settings, self.location, on_error=self._url_error)
        try:
            cfg = self.settings.to_config()
        except ValueError as e:
            self._settings_error = str(e)
            cfg = Config(parallel=False)
        self.runner = Runner(cfg)
        self.frame = self.runner.latest()
        self._counter = self.frame.counter
        self._status_t, self._status_state = 0.0, None
        # Refresh bookkeeping for benchmarks: wall and CPU (this thread) seconds spent.
        self.stats = {"ticks": 0, "frames": 0, "update_seconds": 0.0, "update_cpu": 0.0}
        self.recorder = FrameRecorder(max_frames=120)  # the GIF export's frames
        self.views = LiveViews(self.frame.snapshot)
        self.images = ImageViews()  # stacked (MNIST) networks only; configured in _draw
        self._build_widgets()
        self._build_layout()
        self.settings.param.watch(self._on_settings, list(FIELDS))
        self._on_settings()
        self._draw(self.frame, force=True)
        self._callback = None
        if periodic and pn.state.curdoc is not None:
            self._callback = pn.state.add_periodic_callback(self.refresh, period=period_ms)
            pn.state.on_session_destroyed(self._destroyed)
        ACTIVE.add(self)

    # -- construction ----------------------------------------------------------------------
    def _build_widgets(self) -> None:
        s = self.settings
        self.widgets = {}
        for f in FIELDS:
            cls, kw = _WIDGETS[f]
            self.widgets[f] = cls.from_param(s.param[f], css_classes=[f"xy-field-{f}"],
                                             sizing_mode="stretch_width", **kw)
        kw = {"sizing_mode": "stretch_width", "margin": (5, 3)}
        self.train = pn.widgets.Button(label="Train", color="primary", min_width=70, **kw)
        self.step = pn.widgets.Button(label="Step", min_width=55, **kw)
        self.reset = pn.widgets.Button(label="Reset", min_width=60, **kw)
        self.new_seed = pn.widgets.Button(label="New seed", min_width=85, **kw)
        self.train.on_click(lambda e: self.toggle_train())
        self.step.on_click(lambda e: self.step_once())
        self.reset.on_click(lambda e: self.do_reset())
        self.new_seed.on_click(lambda e: self.do_reset(new_seed=True))
        self.sample = pn.widgets.IntSlider(label="Sample (row of the last batch)", start=0,
                                           end=1, value=0, css_classes=["xy-sample"],
                                           width=360)
        self.sample.param.watch(lambda e: self._draw(self.frame, force=True), "value")
        self.sample_info = pn.pane.HTML("", width=230, align="center",
                                         styles={"font-size": "0.9em"})
        self.upload = pn.widgets.FileInput(accept=".npz,.toml,.json", css_classes=["xy-upload"],
                                           sizing_mode="stretch_width")
        self.upload.param.watch(self._on_upload, "value")
        self.epoch_pane = pn.pane.HTML("", margin=(5, 10), styles={"font-size": "1.15em"})
        self.status_pane = pn.pane.HTML("", margin=(5, 10), sizing_mode="stretch_width",
                                        styles={"font-size": "1.0em"})
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False,
                                   css_classes=["xy-alert"], sizing_mode="stretch_width")
        self.notice = pn.pane.Alert("", alert_type="warning", visible=False,
                                    css_classes=["xy-notice"], sizing_mode="stretch_width")
        self.couplings_pane = pn.pane.HTML("", css_classes=["xy-couplings"],
                                           sizing_mode="stretch_width")
        self.preview = figure(width=290, height=170, toolbar_location=None, tools="",
                              x_range=DataRange1d(range_padding=0.08),
                              y_range=DataRange1d(range_padding=0.08))
        self.preview.css_classes = ["xy-preview"]  # a Bokeh pane does not pass its own on
        self.preview.axis.visible = False
        self.preview.grid.visible = False
        self.preview.outline_line_color = None
        self._pv_nodes, self._pv_edges = (
            self.preview.scatter("x", "y", color="color", size=5).data_source,
            self.preview.segment("x0", "y0", "x1", "y1", color="#9e9e9e", alpha=0.5,
                                 line_width=1).data_source)
        self.preview.renderers = self.preview.renderers[::-1]  # bonds under nodes
        # Panel's page writes a new query string only once the whole page is idle, which a
        # live page rarely is; this hidden Div writes it at once, so a copied URL is current.
        self._url_div = Div(text="", visible=False)
        self._url_div.js_on_change("text", CustomJS(code=_REPLACE_URL))
        self.panes = {k: pn.pane.Bokeh(fig, margin=2) for k, fig in self.views.figures.items()}
        self.panes.update({f"image_{k}": pn.pane.Bokeh(fig, margin=2)
                           for k, fig in self.images.figures.items()})
        self.image_caption = pn.pane.HTML("", css_classes=["xy-images-caption"],
                                          styles={"font-size": "0.85em"}, width=260)
        self.exports = pn.Column(
            pn.widgets.FileDownload(callback=self._npz_file, filename="xyprop-snapshot.npz",
                                    label="Snapshot (.npz)", sizing_mode="stretch_width"),
            pn.widgets.FileDownload(callback=self._csv_file, filename="xyprop-metrics.csv",
                                    label="Metrics (.csv)", sizing_mode="stretch_width"),
            pn.widgets.FileDownload(callback=self._toml_file, filename="xyprop-config.toml",
                                    label="Config (.toml)", sizing_mode="stretch_width"),
            pn.widgets.FileDownload(callback=self._png_file, filename="xyprop-views.png",
                                    label="Views (.png)", sizing_mode="stretch_width"),
            pn.widgets.FileDownload(callback=self._gif_file, filename="xyprop-run.gif",
                                    label="Animation of the run (.gif)",
                                    sizing_mode="stretch_width"),
            pn.widgets.FileDownload(callback=self._html_file, filename="xyprop-views.html",
                                    label="Views, standalone (.html)",
                                    sizing_mode="stretch_width"),
            sizing_mode="stretch_width", css_classes=["xy-exports"])

    def _build_layout(self) -> None:
        w = self.widgets
        cards = []
        for title, rows in _GROUPS:
            cards.append(pn.Card(*[pn.Row(*[w[f] for f in r], sizing_mode="stretch_width")
                                   for r in rows], title=title, sizing_mode="stretch_width",
                                 collapsible=True, margin=(5, 0)))
        self.sidebar = pn.Column(
            pn.Row(self.train, self.step, self.reset, self.new_seed, margin=(0, 0, 5, 0),
                   sizing_mode="stretch_width"),
            self.couplings_pane, pn.pane.Bokeh(self.preview),
            *cards,
            pn.Card(pn.pane.HTML("<small>Continue from a snapshot (.npz) or reproduce a "
                                 "config (.toml / .json):</small>"), self.upload,
                    title="Load", sizing_mode="stretch_width", margin=(5, 0)),
            pn.Card(self.exports, pn.pane.HTML(
                "<small>The page address carries every setting: copy it to share this "
                "setup. Sweep results: <a href='sweeps' target='_blank'>Sweeps</a>."
                "</small>"), title="Export and share", sizing_mode="stretch_width",
                margin=(5, 0)),
            sizing_mode="stretch_width")
        p = self.panes
        card = functools.partial(pn.Card, collapsible=False, margin=(5, 5))
        # a Bokeh pane's own ``visible`` does not come back once off (Panel syncs it with the
        # figure's), so the phase figure is hidden through a wrapper
        self.phase_view = pn.Column(p["phases"], margin=0)
        self.phase_card = card(self.phase_view, pn.Row(self.sample, self.sample_info, pn.pane.HTML(
            "<small>\u25bd inputs, \u25a1 outputs; the response shows how far the "
            "nudge at the outputs reaches</small>", align="center")),
            title=self.PHASE_TITLE)
        self.coupling_card = card(p["couplings"], title="Couplings")
        self.main = pn.Column(
            pn.Row(self.epoch_pane, self.status_pane, pn.pane.Bokeh(self._url_div, visible=False),
                   sizing_mode="stretch_width"),
            self.alert, self.notice,
            self.phase_card,
            self._image_card(card),
            pn.FlexBox(self.coupling_card,
                       card(p["outputs"], title="Outputs"),
                       card(p["confusion"], title="Confusion matrix")),
            card(pn.Row(p["loss"], p["accuracy"]), title="Learning curves"),
            sizing_mode="stretch_width")

    PHASE_TITLE = "Spin phases and response"

    def _show_images(self, stacked: bool) -> None:
        """Stacked (MNIST) networks: the image card replaces the generic node and bond views.

        Those would draw thousands of dots and ~50k bonds per frame, which leaves the browser
        many seconds behind the server; the sheets and kernels show the same state readably.
        """
        self.image_card.visible = stacked
        self.phase_view.visible = not stacked
        self.coupling_card.visible = not stacked
        self.phase_card.title = "Sample shown" if stacked else self.PHASE_TITLE

    def _image_card(self, card) -> pn.Card:
        p = self.panes
        self.image_card = card(
            pn.FlexBox(p["image_input"], p["image_sheets"]),
            pn.FlexBox(p["image_classes"],
                       pn.Column(p["image_kernels"], self.image_caption)),
            title="Images: input, hidden sheets, kernels, classes", visible=False,
            css_classes=["xy-images"])
        return self.image_card

    def __panel__(self):
        return pn.Row(pn.Column(self.sidebar, width=330), self.main,
                      sizing_mode="stretch_width")

    def template(self) -> pn.template.FastListTemplate:
        """The page: a FastListTemplate with the controls in its sidebar."""
        return pn.template.FastListTemplate(
            title="xyprop: XY oscillator networks trained with equilibrium propagation",
            sidebar=[self.sidebar], main=[self.main], sidebar_width=340,
            accent_base_color="#3b6ea8", header_background="#2c4f7c", main_layout=None,
            raw_css=[CSS.read_text()] if CSS.exists() else [], theme_toggle=False)

    # -- actions ---------------------------------------------------------------------------
    def toggle_train(self) -> None:
        """Train button: start (applying pending settings to a fresh run) or pause."""
        r = self.runner
        if r.state == "running":
            r.pause()
        else:
            if not self._settings_valid():
                return
            if r.trainer.step_count == 0 and self._pending():
                if not self.do_reset():
                    return
            if not r.start():
                self._note("Training finished (epochs or target accuracy reached): raise "
                           "Epochs or press Reset.", "info")
        self._sync_buttons()

    def step_once(self) -> None:
        if not self._settings_valid():
            return
        if self.runner.trainer.step_count == 0 and self._pending():
            if not self.do_reset():
                return
        self.runner.step_once()

    def do_reset(self, new_seed: bool = False) -> bool:
        """Rebuild the network from the sidebar (Reset / New seed). False if invalid."""
        if new_seed:
            self.settings.seed = int(np.random.default_rng().integers(2**31))
        try:
            cfg = self.settings.to_config()
        except ValueError as e:
            self._set_error(str(e))
            return False
        try:
            self.runner.reset(cfg)
        except (ValueError, RuntimeError, OSError) as e:  # e.g. data that cannot be loaded
            self._set_error(str(e))
            return False
        self._set_error(None)
        self._after_rebuild()
        return True

    def _after_rebuild(self) -> None:
        self._on_settings()
        self._draw(self.runner.latest(), force=True)
        self._sync_buttons()

    def load_snapshot_bytes(self, data: bytes) -> None:
        """Continue from an uploaded ``.npz`` (settings follow its config)."""
        snap = load_snapshot(io.BytesIO(data))
        cfg = self.runner.load(snap)
        self.settings.from_config(cfg)
        self._after_rebuild()

    def load_config_text(self, text: str, json: bool = False) -> None:
        """Reproduce an uploaded config: settings follow it, then Reset."""
        cfg = Config.from_json(text) if json else Config.from_toml(text)
        self.settings.from_config(cfg)
        self.do_reset()

    def _on_upload(self, event) -> None:
        data = event.new
        if not data:
            return
        # Sniff the content: the file name may arrive after the bytes.
        try:
            if data[:4] == b"PK\x03\x04":  # a zip archive: an .npz snapshot
                self.load_snapshot_bytes(data)
            else:
                text = data.decode("utf-8")
                self.load_config_text(text, json=text.lstrip().startswith("{"))
            self._set_error(None)
        except UnicodeDecodeError:
            self._set_error("upload: not a .npz snapshot or a .toml / .json config")
        except ValueError as e:
            self._set_error(str(e))

    # -- settings --------------------------------------------------------------------------
    def _url_error(self, values: dict) -> None:
        bad = []
        for k, v in values.items():  # apply what is valid, report the rest
            try:
                setattr(self.settings, k, v)
            except (ValueError, TypeError):
                bad.append(f"{k}={v!r}")
        if bad:
            self._settings_error = "ignored invalid URL setting(s): " + ", ".join(bad)

    def _pending(self) -> list[str]:
        try:
            return self.settings.pending(self.runner.trainer.config)
        except ValueError:
            return []

    def _settings_valid(self) -> bool:
        """False (and the message shown) if the sidebar holds a value the config rejects:
        Train and Step must not silently run the old settings."""
        try:
            self.settings.pending(self.runner.trainer.config)
        except ValueError as e:
            self._set_error(str(e))
            return False
        return True

    def _on_settings(self, *events) -> None:
        s, names = self.settings, {e.name for e in events}
        for f, cond in _VISIBLE.items():
            self.widgets[f].visible = cond(s)
        error = None
        try:
            cfg = s.to_config()
            if not events or names & set(LIVE):
                self.runner.set_live(**s.live_values())
            pending = s.pending(self.runner.trainer.config)
            if not events or names - set(LIVE):
                self._update_preview(cfg)
        except ValueError as e:
            error, pending = str(e), []
        if events or error:
            self._set_error(error)
        if self.location is not None and self._url_div.text != self.location.search:
            with pn.io.hold():
                self._url_div.text = self.location.search
        self.notice.object = ("<span class='xy-notice-text'>Reset needed to apply: "
                              + ", ".join(pending) + "</span>")
        self.notice.alert_type = "warning"
        self.notice.visible = bool(pending)

    def _update_preview(self, cfg: Config) -> None:
        n_in, n_out = task_dims(cfg.task)
        net = build_network(cfg, n_in, n_out)
        n_par = net.n_params + (2 * int(net.free.sum()) if cfg.train_bias else 0)
        extra = ("<br><span class='xy-stacked-counts'>" + counts_text(net) + "</span>"
                 if net.kind == "stacked" else "")
        self.couplings_pane.object = (
            f"<span class='xy-couplings-text'><b>{net.n_edges:,}</b> couplings | {net.n_nodes:,} "
            f"nodes ({n_in} in, {n_out} out) | {n_par:,} trainable parameters</span>{extra}")
        nodes, edges = preview_data(net)
        with pn.io.hold():  # raw Bokeh models: change them under the document lock
            self._pv_nodes.data, self._pv_edges.data = nodes, edges
            self.preview.y_range.flipped = net.kind == "lattice"

    def _set_error(self, msg: str | None) -> None:
        self._settings_error = msg
        self._show_alert()

    def _show_alert(self) -> None:
        msgs = [m for m in (self._settings_error,) if m]
        if self.runner.state == "error" and self.runner.error:
            msgs.append(f"Training stopped: {self.runner.error}")
        text = "".join(f"<div class='xy-alert-text'>{m}</div>" for m in msgs)
        if text != self.alert.object:
            self.alert.object = text
        self.alert.visible = bool(msgs)

    def _note(self, text: str, kind: str = "info") -> None:
        self.notice.object = f"<span class='xy-notice-text'>{text}</span>"
        self.notice.alert_type, self.notice.visible = kind, True

    # -- drawing ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Periodic callback: draw the newest frame if there is one (stale ones are gone)."""
        self.stats["ticks"] += 1
        f = self.runner.latest(self._counter)
        if f is None:
            self._sync_buttons()
            return
        self._draw(f)

    def _draw(self, f, force: bool = False) -> None:
        t0, c0 = time.perf_counter(), time.thread_time()
        self._counter, self.frame = f.counter, f
        snap = f.snapshot
        frames = self.recorder.frames
        if frames and (snap.step < frames[-1].step or geometry_key(snap) != self.views.key):
            self.recorder.clear()  # a reset or a new geometry starts a new animation
        if not frames or snap.step > frames[-1].step:
            self.recorder.add(snap, self.sample.value)
        with pn.io.hold():
            if geometry_key(snap) != self.views.key:
                self.views.configure(snap)
            if image_key(snap) != self.images.key:
                self.images.configure(snap)
                self.image_caption.object = self.images.caption
                if self.image_card.visible != self.images.active:
                    self._show_images(self.images.active)
            b = snap.free_phases.shape[0]
            if b > 1 and self.sample.end != b - 1:
                self.sample.end = b - 1
            self.views.update(f, self.sample.value, now=t0, geometry=not self.images.active)
            self.images.update(f, self.sample.value, now=t0)
            self._draw_status(f, force or t0 - self._status_t >= 0.25)
            self._sync_buttons()
            self._show_alert()
        self.stats["frames"] += 1
        self.stats["update_seconds"] += time.perf_counter() - t0
        self.stats["update_cpu"] += time.thread_time() - c0

    def _draw_status(self, f, due: bool) -> None:
        """Text panes (epoch, status line, sample) at most 4 times a second, and at once
        when the state changes: each update is a model change to send and lay out."""
        st = status_values(f)
        if not (due or st["state"] != self._status_state):
            return
        self._status_t, self._status_state = time.perf_counter(), st["state"]
        epoch = f"<b class='xy-epoch'>Epoch {st['epoch']} / {st['epochs']}</b>"
        if epoch != self.epoch_pane.object:
            self.epoch_pane.object = epoch
        info = (f"<span class='xy-sample-info'>"
                f"{sample_label(f.snapshot, self.sample.value)}</span>")
        if info != self.sample_info.object:
            self.sample_info.object = info
        acc = "" if st["train_accuracy"] is None else (
            f" | accuracy train {st['train_accuracy']:.1%}, test {st['test_accuracy']:.1%}")
        color = _STATE_COLORS.get(st["state"], "#555555")
        self.status_pane.object = (
            f"<span class='xy-status'><b class='xy-state' style='color:{color}'>"
            f"{st['state']}</b> | step {st['step']} | {st['samples_per_s']:.0f} samples/s | "
            f"{st['iterations']:.0f} relaxation sweeps | {st['failures']} failures{acc}</span>")

    def _sync_buttons(self) -> None:
        label = "Pause" if self.runner.state == "running" else "Train"
        if self.train.label != label:
            self.train.label = label
        self.step.disabled = self.runner.state == "running"

    # -- exports ---------------------------------------------------------------------------
    def _npz_file(self) -> io.BytesIO:
        return io.BytesIO(self.runner.latest().snapshot.to_bytes())

    def _csv_file(self) -> io.StringIO:
        return io.StringIO(metrics_csv(self.runner.latest().snapshot.history))

    def _toml_file(self) -> io.StringIO:
        return io.StringIO(self.runner.config.to_toml())

    def _png_file(self) -> io.BytesIO:
        return io.BytesIO(png_bytes(self.runner.latest().snapshot, self.sample.value))

    def _gif_file(self) -> io.BytesIO:
        frames = self.recorder.frames or [Frame.of(self.runner.latest().snapshot)]
        return io.BytesIO(gif_bytes(self.runner.latest().snapshot, frames))

    def _html_file(self) -> io.BytesIO:
        return io.BytesIO(html_bytes(self.runner.latest(), self.sample.value))

    # -- cleanup ---------------------------------------------------------------------------
    def _destroyed(self, session_context) -> None:
        if self._callback is not None:
            self._callback.stop()
        self.runner.stop(timeout=10)
        ACTIVE.discard(self)


__all__ = ["Dashboard", "ACTIVE", "task_dims"]
