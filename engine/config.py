"""One experiment, frozen: task, architecture, physics and training settings.

The config is flat on purpose: every field is a CLI flag, a TOML key and a sweep-grid
axis under the same name. ``validate()`` runs on construction, so a ``Config`` that
exists is a valid one; bad values raise ``ValueError`` naming the field, the value and
what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import tomli_w

TASKS = ("xor", "iris", "digits", "mnist")
ARCHS = ("all-to-all", "layered", "lattice", "stacked", "custom")
INTRAS = (0, 4, 8)
READOUTS = ("dense", "local")
NEIGHBOURHOODS = (4, 8)
PLACEMENTS = ("spread", "centre", "start")
NUDGINGS = ("one-sided", "centered")
COSTS = ("log-cosine", "cosine")
SOLVERS = ("exact", "gradient-flow")
OPTIMIZERS = ("sgd", "momentum", "adam")
INITS = ("ferro", "glassy")


@dataclass(frozen=True)
class Config:
    """Every setting of one experiment.

    Attributes are grouped as task, architecture, physics and training. Defaults are the
    measured best choices for lattices (see README, "Defaults").
    """

    # -- task
    task: str = "xor"
    data_dir: str | None = None
    train_size: int | None = None
    test_size: int | None = None
    # -- architecture
    arch: str = "lattice"
    hidden: int = 5
    layers: tuple[int, ...] = (10,)
    rows: int = 4
    cols: int = 4
    # 8 neighbours, with the stronger lattice start of ``ferro_mean``, train lattices far
    # more reliably (docs/study.md: Iris 10x10 64 % -> 91 %, XOR 6x6 3/10 -> 8/10 seeds)
    neighbourhood: int = 8
    skip_length: int = 0
    skip_count: int = 0
    input_placement: str = "spread"
    output_placement: str = "spread"
    edge_file: str | None = None
    # stacked lattices (P26): input sheet -> hidden sheets with local receptive fields
    window: int = 6
    stride: int = 1
    channels: int = 1
    sheets: int = 1
    weight_sharing: bool = False
    intra: int = 0
    readout: str = "dense"
    # -- physics
    beta: float = 0.1
    nudging: str = "one-sided"
    cost: str = "log-cosine"
    solver: str = "exact"
    tol: float = 1e-6
    max_iter: int = 100000
    omega: float = 0.0
    m_init: int = 1
    # -- training
    optimizer: str = "adam"
    lr: float = 0.05
    momentum: float = 0.9
    lr_decay: float = 0.0
    epochs: int = 300
    batch_size: int = 4
    seed: int = 0
    init: str = "ferro"
    init_scale: float = 0.5
    # None = by architecture (``ferro_mean``): a stronger ferromagnetic start carries the
    # nudge across a lattice's depth, but slows dense networks ~2x (docs/study.md)
    init_mean: float | None = None
    init_bias: float = 0.0
    train_bias: bool = True
    stop_at_accuracy: float | None = None
    eval_restarts: int = 0
    # samples relax in parallel threads (numba prange, bit-identical to serial): 1.2-1.6x on
    # two cores even for XOR (bench/README.md); sessions and sweep runs force it off
    parallel: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.layers, list):
            object.__setattr__(self, "layers", tuple(self.layers))
        validate(self)

    def ferro_mean(self) -> float:
        """Mean of the ferromagnetic initial couplings: ``init_mean``, or when unset 2 on
        lattices (measured best, docs/study.md) and 1 on every other architecture."""
        if self.init_mean is not None:
            return float(self.init_mean)
        return 2.0 if self.arch == "lattice" else 1.0

    # -- round trips ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples become lists, so it is JSON/TOML friendly)."""
        d = dataclasses.asdict(self)
        d["layers"] = list(self.layers)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_toml(self) -> str:
        # TOML has no null: unset optional fields are simply omitted.
        return tomli_w.dumps({k: v for k, v in self.to_dict().items() if v is not None})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        """Build from a dict; unknown keys are an error (a typo must not pass silently)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"config: unknown field(s) {', '.join(map(repr, unknown))}; "
                f"allowed fields: {', '.join(sorted(known))}"
            )
        return cls(**{k: _coerce(k, v) for k, v in d.items()})

    @classmethod
    def from_json(cls, text: str) -> Config:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"config: not valid JSON ({e})") from None
        if not isinstance(d, dict):
            raise ValueError("config: JSON must hold an object of field = value")
        return cls.from_dict(d)

    @classmethod
    def from_toml(cls, text: str) -> Config:
        try:
            d = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"config: not valid TOML ({e})") from None
        return cls.from_dict(d)

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """Read a ``.toml`` or ``.json`` file."""
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as e:
            raise ValueError(f"config file: cannot read {str(p)!r} ({e.strerror})") from None
        if p.suffix.lower() == ".json":
            return cls.from_json(text)
        if p.suffix.lower() == ".toml":
            return cls.from_toml(text)
        raise ValueError(f"config file: {str(p)!r} must end in .toml or .json")

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **{k: _coerce(k, v) for k, v in changes.items()})


_FIELD_TYPES = {f.name: f.type for f in fields(Config)}


def _coerce(name: str, value: Any) -> Any:
    """Accept ints for float fields and lists for tuples; reject the rest in validate()."""
    if name not in _FIELD_TYPES:
        raise ValueError(f"config: unknown field {name!r}")
    t = _FIELD_TYPES[name]
    if "float" in t and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if name == "layers" and isinstance(value, list):
        return tuple(value)
    return value


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ValueError(f"config field {name!r}: got {value!r}; allowed: {allowed}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def validate(c: Config) -> None:
    """Raise ``ValueError`` for the first invalid field of ``c``."""
    choices = {
        "task": TASKS, "arch": ARCHS, "neighbourhood": NEIGHBOURHOODS,
        "input_placement": PLACEMENTS, "output_placement": PLACEMENTS, "nudging": NUDGINGS,
        "cost": COSTS, "solver": SOLVERS, "optimizer": OPTIMIZERS, "init": INITS,
        "intra": INTRAS, "readout": READOUTS,
    }
    for name, allowed in choices.items():
        v = getattr(c, name)
        if v not in allowed:
            _fail(name, v, "one of " + ", ".join(map(str, allowed)))
    ints = {  # name: minimum
        "hidden": 1, "rows": 1, "cols": 1, "skip_length": 0, "skip_count": 0,
        "max_iter": 1, "m_init": 1, "epochs": 0, "batch_size": 1, "seed": 0,
        "eval_restarts": 0, "window": 1, "stride": 1, "channels": 1, "sheets": 1,
    }
    for name, lo in ints.items():
        v = getattr(c, name)
        if not _is_int(v) or v < lo:
            _fail(name, v, f"an integer >= {lo}")
    for name in ("train_size", "test_size"):
        v = getattr(c, name)
        if v is not None and (not _is_int(v) or v < 1):
            _fail(name, v, "an integer >= 1, or unset for the whole split")
    if not isinstance(c.layers, tuple) or not all(_is_int(n) and n >= 1 for n in c.layers):
        _fail("layers", c.layers, "a list of hidden layer sizes, each an integer >= 1")
    positive = ("beta", "tol", "lr")
    for name in positive:
        v = getattr(c, name)
        if not _is_real(v) or v <= 0:
            _fail(name, v, "a finite number > 0")
    if not _is_real(c.omega) or not (c.omega == 0 or 0 < c.omega < 2):
        _fail("omega", c.omega, "0 (choose by lattice size) or a number in (0, 2)")
    for name in ("momentum", "lr_decay"):
        v = getattr(c, name)
        if not _is_real(v) or not 0 <= v < 1:
            _fail(name, v, "a number in [0, 1)")
    if not _is_real(c.init_scale) or c.init_scale < 0:
        _fail("init_scale", c.init_scale, "a finite number >= 0")
    if not _is_real(c.init_bias) or c.init_bias < 0:
        _fail("init_bias", c.init_bias, "a finite number >= 0")
    if c.init_mean is not None and not _is_real(c.init_mean):
        _fail("init_mean", c.init_mean, "a finite number, or unset (2 on lattices, 1 otherwise)")
    if c.stop_at_accuracy is not None and (
        not _is_real(c.stop_at_accuracy) or not 0 < c.stop_at_accuracy <= 1
    ):
        _fail("stop_at_accuracy", c.stop_at_accuracy, "a fraction in (0, 1], or unset")
    for name in ("train_bias", "parallel", "weight_sharing"):
        if not isinstance(getattr(c, name), bool):
            _fail(name, getattr(c, name), "true or false")
    if c.arch == "lattice" and c.rows * c.cols < 2:
        _fail("rows", c.rows, "rows x cols >= 2 for a lattice")
    if c.skip_count > 0 and c.skip_length < 2:
        _fail("skip_length", c.skip_length, "an integer >= 2 when skip_count > 0")
    if c.arch == "custom" and not c.edge_file:
        _fail("edge_file", c.edge_file, "a path to an edge-list file when arch = 'custom'")
    for name in ("data_dir", "edge_file"):
        v = getattr(c, name)
        if v is not None and not isinstance(v, str):
            _fail(name, v, "a path string, or unset")


CONFIG_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Config))
DEFAULTS = {f.name: f.default for f in fields(Config)}
__all__ = ["Config", "validate", "CONFIG_FIELDS", "DEFAULTS"]
