"""Output side of the ``xyprop`` command: JSON, atomic file writes, metrics CSV, Ctrl-C."""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
from pathlib import Path

from xyprop.engine import metrics_csv
from xyprop.engine.files import atomic_write, write_text


def emit_json(obj) -> None:
    """Print ``obj`` as one line of JSON on stdout."""
    print(json.dumps(obj, default=plain))


def plain(v):
    """JSON for numpy scalars and arrays."""
    if hasattr(v, "tolist"):
        return v.tolist()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def finite(x):
    """JSON has no inf/NaN: report them as null."""
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def n_parameters(net, config) -> int:
    """Trainable numbers after sharing: couplings, plus h and psi per free node."""
    return net.n_params + (2 * int(net.free.sum()) if config.train_bias else 0)


def out_dir(path: str) -> Path:
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"--out {path!r}: cannot create the folder ({e.strerror})") from None
    return out


def run_until_interrupt(tr, progress) -> bool:
    """Train until done; a first Ctrl-C stops cleanly between two steps (so the saved state
    resumes exactly), a second one at once. Returns whether it was interrupted."""
    stop: list[bool] = []

    def on_sigint(signum, frame):
        if stop:
            raise KeyboardInterrupt
        stop.append(True)
        print("\nxyprop: stopping after this step (Ctrl-C again to abort)", file=sys.stderr)

    main_thread = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, on_sigint) if main_thread else None
    try:
        epoch = tr.epoch
        for _ in tr.steps():
            if tr.epoch != epoch:
                epoch = tr.epoch
                progress(tr)
            if stop:
                return True
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, old)
    return False



__all__ = ["atomic_write", "emit_json", "finite", "metrics_csv", "n_parameters", "out_dir",
           "run_until_interrupt", "write_text"]
