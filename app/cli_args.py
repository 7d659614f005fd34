"""Config <-> command-line flags: one flag per ``Config`` field, generated from the dataclass.

Field ``skip_length`` is flag ``--skip-length``; booleans get ``--x/--no-x``; ``layers``
takes comma-separated sizes (``--layers 20,10``); optional fields accept ``none`` to unset a
value from a config file. Flags default to "not given", so a value from ``--config FILE``
is only overridden by flags that were typed.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from xyprop.engine import CONFIG_FIELDS, Config

# Short help for the fields people type most; every other field gets a generic line.
HELP = {
    "task": "xor, iris, digits or mnist",
    "data_dir": "MNIST: folder of IDX files or an .npz",
    "arch": "all-to-all, layered, lattice or custom",
    "hidden": "hidden nodes (all-to-all)",
    "layers": "hidden layer sizes, comma-separated (layered), e.g. 20,10",
    "rows": "lattice rows", "cols": "lattice columns",
    "neighbourhood": "lattice neighbours: 4 or 8",
    "skip_length": "skip-connection length (lattice)",
    "skip_count": "number of skip connections (lattice)",
    "edge_file": "edge-list file (arch custom)",
    "beta": "nudging strength", "nudging": "one-sided or centered",
    "cost": "log-cosine or cosine", "solver": "exact or gradient-flow",
    "tol": "relaxation force tolerance", "omega": "over-relaxation; 0 = by lattice size",
    "m_init": "random initial states per sample",
    "optimizer": "sgd, momentum or adam", "lr": "learning rate",
    "epochs": "total epochs to train", "batch_size": "samples per update",
    "init": "ferro or glassy coupling start", "seed": "random seed",
    "init_mean": "mean of the ferro coupling start; unset = 2 on lattices, 1 otherwise",
    "parallel": "relax the samples of a batch in parallel threads (bit-identical results)",
    "stop_at_accuracy": "stop once train accuracy reaches this fraction; keep the best",
}


def flag(name: str) -> str:
    """The flag of a config field: ``skip_length`` -> ``--skip-length``."""
    return "--" + name.replace("_", "-")


def _optional(parse):
    def conv(text: str):
        return None if text.strip().lower() == "none" else parse(text)
    conv.__name__ = parse.__name__
    return conv


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def int_list(text: str) -> tuple[int, ...]:
    """``"20,10"`` -> ``(20, 10)``."""
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers (e.g. 20,10)") from None


def float_list(text: str) -> list[float]:
    """``"1e-3,1e-2"`` -> ``[0.001, 0.01]``."""
    try:
        return [float(p) for p in text.replace(" ", "").split(",") if p]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of numbers (e.g. 1e-3,1e-2)") from None


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE`` and one flag per Config field to ``parser``."""
    g = parser.add_argument_group(
        "experiment settings", "config fields; typed flags override --config FILE")
    g.add_argument("--config", metavar="FILE", help="TOML or JSON file of config fields")
    for f in fields(Config):
        kind = str(f.type)
        default = f.default if f.default is not None else "unset"
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS,
                              "help": f"{HELP.get(f.name, f.name.replace('_', ' '))} "
                                      f"(default: {default})"}
        if kind == "bool":
            g.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, **kw)
            continue
        if "tuple" in kind:
            conv, metavar = int_list, "N[,N...]"
        elif "int" in kind:
            conv, metavar = _int, "N"
        elif "float" in kind:
            conv, metavar = _float, "X"
        else:
            conv, metavar = str, f.name.split("_")[-1].upper()
        if "None" in kind:
            conv = _optional(conv)
        g.add_argument(flag(f.name), type=conv, metavar=metavar, **kw)


def explicit_fields(ns: argparse.Namespace) -> dict[str, Any]:
    """The config fields whose flags were typed on the command line."""
    return {k: getattr(ns, k) for k in CONFIG_FIELDS if hasattr(ns, k)}


def load_config_file(path: str) -> dict[str, Any]:
    """Fields of a ``.toml`` / ``.json`` config file (validated), as a dict."""
    try:
        return Config.load(path).to_dict()
    except ValueError as e:
        msg = str(e)
        raise ValueError(msg if path in msg else f"config file {path!r}: {msg}") from None


def build_config(ns: argparse.Namespace) -> Config:
    """Config from ``--config FILE`` (if given) overridden by the typed flags."""
    base = load_config_file(ns.config) if getattr(ns, "config", None) else {}
    return Config.from_dict({**base, **explicit_fields(ns)})


__all__ = ["HELP", "add_config_flags", "build_config", "explicit_fields", "flag",
           "float_list", "int_list", "load_config_file"]
