"""Snapshot: the state of a run after one update, and its ``.npz`` file format.

A Snapshot is what crosses into a UI (copied arrays, never shared with the trainer) and
what a run resumes from. The file is a plain ``.npz``: one array per field below plus
``meta``, a JSON string (config, epoch, metrics history, optimiser step, random state,
format version). Writes are atomic; loading never unpickles and checks every array.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import Config
from .files import atomic_write

FORMAT_VERSION = 1

# name: (dtype kind, what the first axis counts); "" = any length
_ARRAYS = {
    "src": ("i", "E"), "dst": ("i", "E"), "param_index": ("i", "E"),
    "coupling": ("f", "E"), "coupling_change": ("f", "E"),
    "w": ("f", "P"),
    "h": ("f", "N"), "psi": ("f", "N"), "response": ("f", "N"),
    "input_nodes": ("i", ""), "output_nodes": ("i", ""),
    "coords": ("f", "N"), "layer": ("i", "N"),
    "opt_m": ("f", ""), "opt_v": ("f", ""),
    "free_phases": ("f", ""), "nudged_phases": ("f", ""),
    "batch_index": ("i", ""), "batch_targets": ("f", ""),
    "perm": ("i", ""),
}


@dataclass(eq=False)
class Snapshot:
    """State of a run after ``step`` updates.

    Arrays (E edges, N nodes, P trainable couplings, B rows of the last batch =
    samples x M_init restarts):
    ``src, dst, param_index`` int (E,); ``coupling`` (E,) per-edge w after sharing is
    expanded; ``coupling_change`` (E,) change made by the last update; ``w`` (P,);
    ``h, psi, response`` (N,); ``input_nodes, output_nodes`` int; ``coords`` (N, 2) drawing
    positions; ``layer`` int (N,); ``opt_m, opt_v`` optimiser moments; ``free_phases,
    nudged_phases`` (B, N) of the last batch; ``batch_index`` int (B,) training-sample index
    of each row; ``batch_targets`` (B, n_out); ``perm`` int, the epoch's sample order.
    """

    config: Config
    epoch: int
    step: int
    step_in_epoch: int
    opt_t: int
    rng_state: dict
    history: list
    src: np.ndarray
    dst: np.ndarray
    param_index: np.ndarray
    coupling: np.ndarray
    coupling_change: np.ndarray
    w: np.ndarray
    h: np.ndarray
    psi: np.ndarray
    response: np.ndarray
    input_nodes: np.ndarray
    output_nodes: np.ndarray
    coords: np.ndarray
    layer: np.ndarray
    opt_m: np.ndarray
    opt_v: np.ndarray
    free_phases: np.ndarray
    nudged_phases: np.ndarray
    batch_index: np.ndarray
    batch_targets: np.ndarray
    perm: np.ndarray
    kind: str = "lattice"
    shape: tuple | None = None
    info: dict = field(default_factory=dict)

    @property
    def metrics(self) -> dict:
        """The latest metrics row (empty before the first epoch ends)."""
        return self.history[-1] if self.history else {}

    def meta(self) -> dict:
        return {
            "format_version": FORMAT_VERSION, "config": self.config.to_dict(),
            "epoch": self.epoch, "step": self.step, "step_in_epoch": self.step_in_epoch,
            "opt_t": self.opt_t, "rng_state": self.rng_state, "history": self.history,
            "kind": self.kind, "shape": list(self.shape) if self.shape else None,
            "info": self.info,
        }

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file in the same folder, then rename)."""
        return atomic_write(path, lambda fh: fh.write(self.to_bytes()))

    def to_bytes(self) -> bytes:
        """The ``.npz`` file content (for downloads)."""
        import io

        buf = io.BytesIO()
        arrays = {k: np.asarray(getattr(self, k)) for k in _ARRAYS}
        arrays["meta"] = np.array(json.dumps(self.meta()))
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()


def load_snapshot(source) -> Snapshot:
    """Read a snapshot from a path or a binary file object; no pickle.

    Raises ``ValueError`` naming the file and what is wrong for unreadable, corrupt or
    inconsistent files.
    """
    name = str(source) if isinstance(source, (str, Path)) else "uploaded snapshot"
    try:
        with np.load(source, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise ValueError(f"snapshot {name!r}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"snapshot {name!r}: not a readable .npz file ({e})") from None
    missing = [k for k in [*_ARRAYS, "meta"] if k not in data]
    if missing:
        raise ValueError(f"snapshot {name!r}: missing array(s) {', '.join(missing)}")
    try:
        meta = json.loads(str(data.pop("meta")))
    except json.JSONDecodeError as e:
        raise ValueError(f"snapshot {name!r}: metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"snapshot {name!r}: metadata must be a JSON object, got "
                         f"{type(meta).__name__}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"snapshot {name!r}: format version {meta.get('format_version')!r}; "
                         f"this xyprop reads version {FORMAT_VERSION}")
    try:
        config = Config.from_dict(meta["config"])
        kw = {k: meta[k] for k in ("epoch", "step", "step_in_epoch", "opt_t", "rng_state",
                                   "history", "kind")}
    except KeyError as e:
        raise ValueError(f"snapshot {name!r}: metadata lacks {e.args[0]!r}") from None
    except ValueError as e:
        raise ValueError(f"snapshot {name!r}: {e}") from None
    shape = tuple(meta["shape"]) if meta.get("shape") else None
    snap = Snapshot(config=config, shape=shape, info=meta.get("info", {}), **kw, **data)
    _check(snap, name)
    return snap


# Arrays with two axes (every other one has one): name -> what the second axis counts.
_SECOND_AXIS = {"coords": "2", "free_phases": "N", "nudged_phases": "N",
                "batch_targets": "n_out"}


def _check(s: Snapshot, name: str) -> None:
    for k in _ARRAYS:
        a, want = getattr(s, k), 2 if k in _SECOND_AXIS else 1
        if a.ndim != want:
            raise ValueError(f"snapshot {name!r}: array {k!r} has shape {a.shape}; "
                             f"expected {want} axis/axes")
    sizes = {"E": s.src.shape[0], "N": s.h.shape[0], "P": s.w.shape[0]}
    # The last batch's arrays are indexed together (plots): rows and widths must agree.
    second = {"2": 2, "N": sizes["N"], "n_out": s.output_nodes.size}
    rows = s.free_phases.shape[0]
    for k, what in _SECOND_AXIS.items():
        a = getattr(s, k)
        if a.shape[1] != second[what] or (k != "coords" and a.shape[0] != rows):
            raise ValueError(f"snapshot {name!r}: array {k!r} has shape {a.shape}; expected "
                             f"({'N' if k == 'coords' else rows}, {second[what]})")
    if s.batch_index.shape[0] != rows:
        raise ValueError(f"snapshot {name!r}: array 'batch_index' has shape "
                         f"{s.batch_index.shape}; expected ({rows},)")
    for k, (kind, axis) in _ARRAYS.items():
        a = getattr(s, k)
        if a.dtype.kind not in (kind, "u" if kind == "i" else kind):
            raise ValueError(f"snapshot {name!r}: array {k!r} has dtype {a.dtype}, "
                             f"expected {'integer' if kind == 'i' else 'float'}")
        if axis and (a.ndim == 0 or a.shape[0] != sizes[axis]):
            raise ValueError(f"snapshot {name!r}: array {k!r} has shape {a.shape}; "
                             f"expected first axis {sizes[axis]} ({axis})")
    n = sizes["N"]
    for k in ("src", "dst", "input_nodes", "output_nodes"):
        a = getattr(s, k)
        if a.size and (a.min() < 0 or a.max() >= n):
            raise ValueError(f"snapshot {name!r}: {k} has node indices outside 0..{n - 1}")
    if s.param_index.size and (s.param_index.min() < 0 or s.param_index.max() >= sizes["P"]):
        raise ValueError(f"snapshot {name!r}: param_index outside 0..{sizes['P'] - 1}")
    # finiteness first: NaN != NaN would otherwise be reported as a coupling mismatch
    for k in ("w", "h", "psi"):
        if not np.isfinite(getattr(s, k)).all():
            raise ValueError(f"snapshot {name!r}: {k} holds NaN or infinite values")
    if not np.array_equal(s.coupling, s.w[s.param_index]):
        raise ValueError(f"snapshot {name!r}: coupling does not equal w[param_index]")


__all__ = ["Snapshot", "load_snapshot", "FORMAT_VERSION"]
