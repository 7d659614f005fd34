"""Dashboard settings: a ``param`` mirror of the experiment :class:`~xyprop.engine.Config`.

Every field the sidebar shows is a parameter of :class:`Settings` under the same name as
the ``Config`` field (and so the same name as the CLI flag, the TOML key and the URL query
parameter). ``Settings.to_config()`` is the only way from the page to the engine; values
are validated there, by ``Config`` itself, so the page and the CLI reject the same inputs
with the same message.

Fields fall in two groups:

- ``LIVE``: handed to the running trainer and applied at its next step
  (``Trainer.update_config``), no reset needed;
- ``STRUCTURAL``: change the network, the data or the initial state; they take effect at
  the next Reset.
"""

from __future__ import annotations

from typing import Any

import param

from xyprop.engine import DEFAULTS, Config, mnist_sample_path
from xyprop.engine.config import (
    ARCHS,
    COSTS,
    INITS,
    INTRAS,
    NEIGHBOURHOODS,
    NUDGINGS,
    OPTIMIZERS,
    READOUTS,
    SOLVERS,
    TASKS,
)

#: Settings applied to a running trainer at its next step.
LIVE: tuple[str, ...] = ("lr", "beta", "nudging", "m_init", "batch_size", "epochs",
                         "lr_decay", "stop_at_accuracy", "solver")

#: Settings that need a Reset (new network / data / initial state).
STRUCTURAL: tuple[str, ...] = ("task", "arch", "rows", "cols", "neighbourhood", "skip_length",
                               "skip_count", "hidden", "layers", "window", "stride",
                               "channels", "sheets", "weight_sharing", "intra", "readout",
                               "cost", "optimizer", "seed", "init", "init_scale", "data_dir",
                               "edge_file")

#: Every Config field the page exposes, in sidebar order.
FIELDS: tuple[str, ...] = ("task", "arch", "rows", "cols", "neighbourhood", "skip_length",
                           "skip_count", "hidden", "layers", "window", "stride", "channels",
                           "sheets", "weight_sharing", "intra", "readout", "edge_file",
                           "data_dir",
                           "beta", "nudging", "cost", "solver", "m_init", "lr", "optimizer",
                           "batch_size", "epochs", "lr_decay", "stop_at_accuracy", "seed",
                           "init", "init_scale")

#: Query-parameter name of each synced setting (identical to the Config field name).
#: Local file paths (``data_dir``, ``edge_file``) stay out of shared URLs.
URL_PARAMS: dict[str, str] = {f: f for f in FIELDS if f not in ("data_dir", "edge_file")}

_D = DEFAULTS


class _Text(param.String):
    """A string parameter that stays a string when read back from a URL (``layers=10``)."""

    def deserialize(self, value):
        return value if value is None else str(value)


def parse_layers(text: str) -> tuple[int, ...]:
    """``"20,10"`` -> ``(20, 10)``; ``""`` -> ``()`` (no hidden layer).

    Raises ``ValueError`` naming the field, the value and what is allowed.
    """
    parts = [p.strip() for p in str(text).replace(";", ",").split(",") if p.strip()]
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        sizes = None
    if sizes is None or any(n < 1 for n in sizes):
        raise ValueError(f"config field 'layers': got {text!r}; allowed: comma-separated "
                         "hidden layer sizes, each an integer >= 1 (for example 20,10)")
    return sizes


def format_layers(layers) -> str:
    return ",".join(str(int(n)) for n in layers)


class Settings(param.Parameterized):
    """The experiment as the page shows it; see module docstring.

    ``base`` holds a full Config for the fields the page does not show (tolerance, momentum,
    data sizes, ...), so a config loaded from a file survives a round trip unchanged.
    """

    task = param.Selector(objects=list(TASKS), default=_D["task"], label="Task")
    arch = param.Selector(objects=list(ARCHS), default=_D["arch"], label="Architecture")
    rows = param.Integer(_D["rows"], label="Rows")
    cols = param.Integer(_D["cols"], label="Columns")
    neighbourhood = param.Selector(objects=list(NEIGHBOURHOODS), default=_D["neighbourhood"],
                                   label="Neighbourhood")
    skip_length = param.Integer(_D["skip_length"], label="Skip length")
    skip_count = param.Integer(_D["skip_count"], label="Skip count")
    hidden = param.Integer(_D["hidden"], label="Hidden nodes")
    layers = _Text(format_layers(_D["layers"]), label="Hidden layers (e.g. 20,10)")
    window = param.Integer(_D["window"], label="Window",
                           doc="Receptive field side of a hidden sheet site (stacked).")
    stride = param.Integer(_D["stride"], label="Stride")
    channels = param.Integer(_D["channels"], label="Channels")
    sheets = param.Integer(_D["sheets"], label="Hidden sheets")
    weight_sharing = param.Boolean(_D["weight_sharing"], label="Weight sharing (one kernel "
                                   "per channel)")
    intra = param.Selector(objects=list(INTRAS), default=_D["intra"],
                           label="Couplings inside a sheet")
    readout = param.Selector(objects=list(READOUTS), default=_D["readout"], label="Readout")
    edge_file = _Text("", label="Edge file (custom)")
    data_dir = _Text("", label="MNIST data (folder or .npz; empty = bundled sample)")
    beta = param.Number(_D["beta"], label="beta (nudge strength)")
    nudging = param.Selector(objects=list(NUDGINGS), default=_D["nudging"], label="Nudging")
    cost = param.Selector(objects=list(COSTS), default=_D["cost"], label="Cost")
    solver = param.Selector(objects=list(SOLVERS), default=_D["solver"], label="Solver")
    m_init = param.Integer(_D["m_init"], label="M_init (random starts)",
                           doc="Random initial states per sample; the gradient is averaged.")
    lr = param.Number(_D["lr"], label="Learning rate")
    optimizer = param.Selector(objects=list(OPTIMIZERS), default=_D["optimizer"],
                               label="Optimiser")
    batch_size = param.Integer(_D["batch_size"], label="Batch size")
    epochs = param.Integer(_D["epochs"], label="Epochs")
    lr_decay = param.Number(_D["lr_decay"], label="lr decay",
                            doc="Learning rate factor (1 - decay) per epoch.")
    stop_at_accuracy = param.Number(0.0, label="Stop at accuracy",
                                    doc="Stop when the train accuracy reaches this; 0 = off.")
    seed = param.Integer(_D["seed"], label="Seed")
    init = param.Selector(objects=list(INITS), default=_D["init"], label="Initialisation")
    init_scale = param.Number(_D["init_scale"], label="Init scale")
    base = param.ClassSelector(class_=Config, default=None, allow_None=True, precedence=-1,
                               doc="Config supplying the fields the page does not show.")

    # -- Config round trip -----------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """The exposed settings as Config field values (layers parsed, 0 -> unset)."""
        d = {f: getattr(self, f) for f in FIELDS}
        d["layers"] = parse_layers(self.layers)
        d["stop_at_accuracy"] = self.stop_at_accuracy or None
        d["edge_file"] = self.edge_file.strip() or None
        d["data_dir"] = self.data_dir.strip() or None
        if d["task"] == "mnist" and d["data_dir"] is None and mnist_sample_path().exists():
            # No download from a page: without a folder, train on the bundled sample.
            d["data_dir"] = str(mnist_sample_path())
        return d

    def to_config(self) -> Config:
        """The Config these settings describe (``parallel=False``: serial kernels per session).

        Raises ``ValueError`` (from ``Config`` validation) naming the bad field.
        """
        d = self.base.to_dict() if self.base is not None else {}
        d.update(self.values())
        d["parallel"] = False
        return Config.from_dict(d)

    def from_config(self, cfg: Config) -> None:
        """Show ``cfg`` (all exposed fields at once; the rest is kept in ``base``)."""
        d = {f: getattr(cfg, f) for f in FIELDS}
        d["layers"] = format_layers(cfg.layers)
        d["stop_at_accuracy"] = float(cfg.stop_at_accuracy or 0.0)
        d["edge_file"] = cfg.edge_file or ""
        bundled = str(mnist_sample_path())
        d["data_dir"] = "" if cfg.data_dir in (None, bundled) else cfg.data_dir
        self.param.update(base=cfg, **d)

    # -- live vs structural ----------------------------------------------------------------
    def pending(self, running: Config) -> list[str]:
        """Structural fields whose value differs from ``running`` (they need a Reset).

        Raises ``ValueError`` when the settings are invalid.
        """
        new = self.to_config()
        return [f for f in STRUCTURAL if getattr(new, f) != getattr(running, f)]

    def live_values(self) -> dict[str, Any]:
        """The live fields as Config values, for ``Runner.set_live``."""
        v = self.values()
        return {f: v[f] for f in LIVE}


def sync_url(settings: Settings, location=None, on_error=None) -> None:
    """Keep the page URL's query string and ``settings`` in step (both directions).

    Values already in the URL (a shared link) are applied to ``settings`` now; changes of
    ``settings`` rewrite the URL. ``location`` defaults to ``pn.state.location`` (None
    outside a served page, then nothing happens). ``on_error(dict)`` receives values from
    the URL that could not be applied.
    """
    if location is None:
        import panel as pn

        location = pn.state.location
    if location is None:
        return
    location.sync(settings, dict(URL_PARAMS), on_error=on_error)


__all__ = ["Settings", "LIVE", "STRUCTURAL", "FIELDS", "URL_PARAMS", "parse_layers",
           "format_layers", "sync_url"]
