"""The "Sweeps" view: load a sweep's results.csv and plot a metric against any field.

For example test accuracy against the number of couplings, coloured by architecture,
with the spread over seeds shown as error bars around the mean.
"""

from __future__ import annotations

import io

import holoviews as hv
import pandas as pd
import panel as pn
import param

hv.extension("bokeh", logo=False)

METRICS = ("test_accuracy", "train_accuracy", "best_test_accuracy", "train_loss", "test_loss",
           "epochs", "epochs_to_target", "seconds", "failures")
_NOT_FIELDS = {"run_id", "status", "snapshot", "error"}


def read_results_csv(data: bytes | str) -> pd.DataFrame:
    """Parse a results.csv (bytes of an upload, or a path); ValueError if it is not one."""
    try:
        df = pd.read_csv(io.BytesIO(data) if isinstance(data, bytes) else data)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise ValueError(f"results file: not a readable CSV ({e})") from None
    missing = [c for c in ("run_id", "status") if c not in df.columns]
    if missing:
        raise ValueError(f"results file: missing column(s) {missing}; expected the "
                         "results.csv written by `xyprop sweep`")
    return df


def summarise(df: pd.DataFrame, x: str, y: str, by: str | None) -> pd.DataFrame:
    """Mean, standard deviation and count of ``y`` per (``by``, ``x``) over finished runs.

    Runs differing only in fields not named (seeds, typically) are pooled: that pooling
    is the seed spread. Returns columns ``[by], x, mean, std, n`` sorted by ``x``.
    """
    ok = df[df["status"] == "ok"].dropna(subset=[y])
    keys = [k for k in (by, x) if k]
    g = ok.groupby(keys, dropna=False)[y]
    out = g.agg(mean="mean", std="std", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out.sort_values(keys[::-1]).reset_index(drop=True)


def fields_of(df: pd.DataFrame) -> list[str]:
    """Columns one can plot against: grid fields and numeric results."""
    return [c for c in df.columns if c not in _NOT_FIELDS]


class SweepsView(pn.viewable.Viewer):
    """Upload a results.csv; choose x, y and colour; see every run and the seed spread."""

    x = param.Selector(default="n_couplings", objects=["n_couplings"], label="x axis")
    y = param.Selector(default="test_accuracy", objects=list(METRICS), label="metric")
    colour = param.Selector(default=None, objects=[None], allow_None=True, label="colour by")
    logx = param.Boolean(default=False, label="log x")

    def __init__(self, **params):
        super().__init__(**params)
        self.df = pd.DataFrame(columns=["run_id", "status"])
        self.upload = pn.widgets.FileInput(accept=".csv", css_classes=["xy-sweeps-upload"])
        self.upload.param.watch(self._on_upload, "value")
        self.message = pn.pane.Alert("Load the results.csv of `xyprop sweep`.",
                                     alert_type="info", css_classes=["xy-sweeps-message"])
        self.table = pn.widgets.Tabulator(pd.DataFrame(), height=260, disabled=True,
                                          pagination="local", page_size=10)
        self.plot = pn.pane.HoloViews(self._figure(), sizing_mode="stretch_width",
                                      min_height=380, css_classes=["xy-sweeps-plot"])
        self.param.watch(self._refresh, ["x", "y", "colour", "logx"])

    def load(self, df: pd.DataFrame, name: str = "results.csv") -> None:
        """Show ``df`` (a results table); choose sensible axes."""
        self.df = df
        fields = fields_of(df)
        numeric = [c for c in fields if pd.api.types.is_numeric_dtype(df[c])]
        grouping = [c for c in fields if c not in METRICS and df[c].nunique() > 1]
        self.param.x.objects = fields
        self.param.y.objects = numeric or list(METRICS)
        self.param.colour.objects = [None, *grouping]
        with param.parameterized.batch_call_watchers(self):
            self.x = "n_couplings" if "n_couplings" in fields else fields[0]
            self.y = "test_accuracy" if "test_accuracy" in numeric else self.param.y.objects[0]
            self.colour = next((c for c in ("label", "arch", "rows") if c in grouping), None)
        n_err = int((df["status"] != "ok").sum())
        self.message.object = (f"{name}: {len(df)} runs, {n_err} failed. Points are runs; "
                               "lines are means over the pooled runs (e.g. seeds), bars one "
                               "standard deviation.")
        self.message.alert_type = "warning" if n_err else "success"
        self.table.value = df
        self._refresh()

    def _on_upload(self, event) -> None:
        try:
            self.load(read_results_csv(event.new), self.upload.filename or "results.csv")
        except ValueError as e:
            self.message.object = str(e)
            self.message.alert_type = "danger"

    def _figure(self):
        df = self.df
        if df.empty or self.y not in df or self.x not in df:
            return hv.Curve([]).opts(responsive=True, min_height=360, title="no results yet")
        ok = df[df["status"] == "ok"].dropna(subset=[self.y])
        by = self.colour
        groups = ok.groupby(by) if by else [(None, ok)]
        layers = []
        for key, part in groups:
            label = f"{by} = {key}" if by else self.y
            s = summarise(part, self.x, self.y, None)
            layers.append(hv.Scatter(part, self.x, self.y, label=label).opts(
                size=6, alpha=0.45, tools=["hover"]))
            layers.append(hv.Curve(s, self.x, "mean", label=label))
            layers.append(hv.ErrorBars(s, self.x, ["mean", "std"], label=label))
        return hv.Overlay(layers).opts(
            responsive=True, min_height=360, logx=self.logx, legend_position="right",
            title=f"{self.y} vs {self.x}", ylabel=self.y, xlabel=self.x)

    def _refresh(self, *_) -> None:
        self.plot.object = self._figure()

    def __panel__(self):
        controls = pn.Row(self.upload, self.param.x, self.param.y, self.param.colour,
                          self.param.logx, sizing_mode="stretch_width")
        return pn.Column(self.message, controls, self.plot, self.table,
                         sizing_mode="stretch_width")
