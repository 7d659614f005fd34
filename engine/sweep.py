"""Grids of experiments run on Dask.

A sweep file (TOML) holds a ``[base]`` table of config fields, a ``[grid]`` table mapping
field names to lists of values (the Cartesian product is run, seeds included), optional
``[[case]]`` tables (each a set of fields that go together, e.g. one architecture with its
size; the grid is run for every case, and a case's ``label`` names it in the results), and
an optional ``[sweep]`` table (``target_accuracy``: report the first epoch that reaches it).
Each run trains with the same :class:`~xyprop.engine.train.Trainer` as the CLI and the
dashboard, on a Dask worker: an embedded ``LocalCluster`` by default, or any running
scheduler. ``results.csv`` gets one row per run, written atomically after every finished
run; re-running into the same folder skips runs already recorded (so a killed sweep
resumes). A failing run becomes a row with ``status = error`` and its message.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .config import CONFIG_FIELDS, Config
from .files import write_text

RESULT_KEYS = ("epochs", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
               "n_couplings", "n_parameters", "seconds", "epochs_run", "failures",
               "best_test_accuracy", "epochs_to_target")


@dataclass(frozen=True)
class Sweep:
    """A base config and a grid over some of its fields.

    Attributes
    ----------
    base : dict   config fields shared by every run
    grid : dict   field -> list of values
    cases : tuple of dict   field sets run with the whole grid each (``label``: a name);
        a case's fields override ``base``
    target_accuracy : float or None   train accuracy whose first epoch is reported
    name : str
    """

    base: dict
    grid: dict
    target_accuracy: float | None = None
    name: str = "sweep"
    cases: tuple = ()

    @classmethod
    def load(cls, path: str | Path) -> Sweep:
        p = Path(path)
        try:
            d = tomllib.loads(p.read_text())
        except OSError as e:
            raise ValueError(f"sweep file: cannot read {str(p)!r} ({e.strerror})") from None
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"sweep file {str(p)!r}: not valid TOML ({e})") from None
        return cls.from_dict(d, name=p.stem)

    @classmethod
    def from_dict(cls, d: dict, name: str = "sweep") -> Sweep:
        extra = sorted(set(d) - {"base", "grid", "sweep", "case"})
        if extra:
            raise ValueError(f"sweep: unknown table(s) {extra}; allowed: base, grid, case, "
                             "sweep")
        base, grid, opts = d.get("base", {}), d.get("grid", {}), d.get("sweep", {})
        cases = d.get("case", [])
        if not isinstance(cases, list) or not all(isinstance(c, dict) for c in cases):
            raise ValueError("sweep [case]: got a single table or a value; allowed: one "
                             "table per case, each written [[case]]")
        tables = [("base", base), ("grid", grid)]
        tables += [(f"case {i + 1}", {k: v for k, v in c.items() if k != "label"})
                   for i, c in enumerate(cases)]
        for table, keys in tables:
            bad = sorted(set(keys) - set(CONFIG_FIELDS))
            if bad:
                raise ValueError(f"sweep [{table}]: unknown config field(s) {bad}; allowed: "
                                 + ", ".join(CONFIG_FIELDS))
        for k, v in grid.items():
            if not isinstance(v, list) or not v:
                raise ValueError(f"sweep [grid] field {k!r}: got {v!r}; allowed: a non-empty "
                                 "list of values")
        both = sorted(set(base) & set(grid))
        if both:
            raise ValueError(f"sweep: field(s) {both} are in both [base] and [grid]")
        for i, c in enumerate(cases):
            clash = sorted(set(c) & set(grid))
            if clash:
                raise ValueError(f"sweep [[case]] {i + 1}: field(s) {clash} are also in [grid]")
            label = c.get("label", "")
            if not isinstance(label, str):
                raise ValueError(f"sweep [[case]] {i + 1} field 'label': got {label!r}; "
                                 "allowed: a string")
            Config.from_dict({**base, **{k: v for k, v in c.items() if k != "label"}})
        bad_opts = sorted(set(opts) - {"target_accuracy"})
        if bad_opts:
            raise ValueError(f"sweep [sweep]: unknown key(s) {bad_opts}; allowed: "
                             "target_accuracy")
        target = opts.get("target_accuracy")
        if target is not None and not (isinstance(target, (int, float)) and 0 < target <= 1):
            raise ValueError(f"sweep [sweep] field 'target_accuracy': got {target!r}; "
                             "allowed: a fraction in (0, 1]")
        Config.from_dict(base)  # fail early on a bad base value
        sweep = cls(base=dict(base), grid=dict(grid), target_accuracy=target, name=name,
                    cases=tuple(dict(c) for c in cases))
        sweep.runs()  # fail at load on two runs with one config
        return sweep

    @property
    def columns(self) -> list[str]:
        """Columns of the fields that vary between runs: case fields (first seen first),
        then grid fields, each named by ``column_of``."""
        keys = list(dict.fromkeys(k for c in self.cases for k in c))
        return [column_of(k) for k in keys + [k for k in self.grid if k not in keys]]

    def runs(self) -> list[dict]:
        """Every run: ``{"run_id", "params" (varying values), "config" (full config dict)}``."""
        keys = list(self.grid)
        out = []
        for case in self.cases or ({},):
            fields = {k: v for k, v in case.items() if k != "label"}
            for values in itertools.product(*(self.grid[k] for k in keys)):
                params = {column_of(k): v
                          for k, v in {**case, **dict(zip(keys, values, strict=True))}.items()}
                cfg = {**self.base, **fields, **dict(zip(keys, values, strict=True))}
                out.append({"run_id": run_id(cfg), "params": params, "config": cfg})
        seen = {}
        for r in out:  # one config twice would be one Dask task and one row
            first = seen.setdefault(r["run_id"], r)
            if first is not r:
                raise ValueError(f"sweep: two runs have the same config ({first['params']} "
                                 f"and {r['params']}); allowed: cases that differ in a field")
        return out


def column_of(field: str) -> str:
    """The results column of a varying config field: its name, or ``config_<name>`` when a
    result has that name (``epochs``: the grid's budget vs the epochs actually trained)."""
    return f"config_{field}" if field in RESULT_KEYS else field


def run_id(config_dict: dict) -> str:
    """Stable id of a run: a hash of its complete config (so a re-run finds its own row).

    The config is completed with the defaults first, so writing a default out (pinning it)
    keeps the id, while a change of a default changes it (the run is different work). A
    config that does not validate (it will become an error row) is hashed as written.
    """
    try:
        full = Config.from_dict(config_dict).to_dict()
        del full["parallel"]  # how it runs, not what: the runs are serial and bit-identical
    except ValueError:
        full = config_dict
    text = json.dumps(full, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def run_one(config_dict: dict, run_dir: str, target_accuracy: float | None = None) -> dict:
    """Train one configuration; never raises. Runs on a Dask worker.

    Returns the result keys (``RESULT_KEYS``), ``snapshot`` (path), ``status`` ("ok" or
    "error") and ``error`` (message).
    """
    from .train import Trainer  # imported on the worker

    try:
        config = Config.from_dict(config_dict).replace(parallel=False)
        tr = Trainer(config)
        tr.run()
        res = tr.result()
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        snap_path = res.save(Path(run_dir) / "snapshot.npz")
        row = tr.summary(res)
        row["best_test_accuracy"] = max((h["test_accuracy"] for h in tr.history), default=None)
        row["epochs_to_target"] = None
        if target_accuracy is not None:
            row["epochs_to_target"] = next((h["epoch"] for h in tr.history
                                            if h["train_accuracy"] >= target_accuracy), None)
        return {**{k: row.get(k) for k in RESULT_KEYS}, "snapshot": str(snap_path),
                "status": "ok", "error": ""}
    except Exception as e:  # a failing run is a result, not the end of the sweep
        msg = f"{type(e).__name__}: {e}".replace("\n", " ")
        if not isinstance(e, ValueError):
            msg += " | " + traceback.format_exc(limit=-1).strip().splitlines()[-2].strip()
        return {**{k: None for k in RESULT_KEYS}, "snapshot": "", "status": "error",
                "error": msg}


def read_results(path: str | Path) -> list[dict]:
    """Rows of a results.csv (all values as strings); [] if there is none."""
    p = Path(path)
    if not p.exists():
        return []
    with p.open(newline="") as fh:
        return list(csv.DictReader(fh))


def write_results(path: Path, rows: list[dict], columns: list[str]) -> None:
    """Write the CSV atomically (temp file + rename), so a kill never leaves half a file."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if r.get(k) is None else r.get(k) for k in columns})
    write_text(path, buf.getvalue())


def run_sweep(sweep: Sweep, out_dir: str | Path, *, scheduler: str | None = None,
              workers: int | None = None, progress: bool = True) -> list[dict]:
    """Run every configuration of ``sweep`` not yet in ``out_dir/results.csv``.

    Parameters
    ----------
    scheduler : address of a running Dask scheduler (``tcp://host:port``); None starts a
        local cluster of ``workers`` processes (default: one per core), one thread each.
    Returns all rows of the results file (earlier and new).
    """
    from dask.distributed import Client, LocalCluster, as_completed
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.csv"
    columns = ["run_id", "status", *sweep.columns, *RESULT_KEYS, "snapshot", "error"]
    rows = read_results(results)
    done = {r["run_id"] for r in rows}
    todo = [r for r in sweep.runs() if r["run_id"] not in done]
    total = len(sweep.runs())
    cluster = None
    if scheduler:
        client = Client(scheduler, timeout="10s")
    else:
        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1,
                               threads_per_worker=1, processes=True, dashboard_address=":0")
        client = Client(cluster)
    try:
        futures = {}
        for r in todo:
            f = client.submit(run_one, r["config"], str(out / "runs" / r["run_id"]),
                              sweep.target_accuracy, key=f"xyprop-{r['run_id']}", pure=False)
            futures[f] = r
        bar = tqdm(total=total, initial=total - len(todo), unit="run", file=sys.stderr,
                   disable=not progress or None, dynamic_ncols=True)
        for f in as_completed(futures):
            r = futures[f]
            try:
                res = f.result()
            except Exception as e:  # worker died: record it, keep going
                res = {"status": "error", "error": f"{type(e).__name__}: {e}"}
            rows.append({"run_id": r["run_id"], **r["params"], **res})
            write_results(results, rows, columns)
            bar.update(1)
        bar.close()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    if not results.exists():
        write_results(results, rows, columns)
    return rows
