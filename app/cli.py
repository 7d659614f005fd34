"""The ``xyprop`` command: train, evaluate, info, gradcheck, bench, serve, sweep.

Each subcommand is one ``_add_<name>(sub)`` function that builds its parser and sets
``func`` to the function that runs it; ``COMMANDS`` lists them (add ``sweep`` the same
way). Heavy imports (numba kernels, tqdm, the Panel server) happen inside the commands, so
``xyprop --help`` starts fast. Bad input -- a ValueError or OSError from anywhere, or a bad
flag -- prints one line ``xyprop: error: ...`` on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xyprop.app.cli_args import (
    add_config_flags,
    build_config,
    explicit_fields,
    flag,
    float_list,
)
from xyprop.app.cli_io import (
    atomic_write,
    emit_json,
    finite,
    metrics_csv,
    n_parameters,
    out_dir,
    run_until_interrupt,
    write_text,
)

# Input and output node counts per task, so `info` need not load (or download) any data.
TASK_DIMS = {"xor": (2, 1), "iris": (4, 3), "digits": (64, 10), "mnist": (784, 10)}
USER_ERRORS = (ValueError, OSError, FloatingPointError, RuntimeError)


class UsageError(Exception):
    """A bad command line (argparse's complaint), reported as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the usage block first
        raise UsageError(f"{message} (see '{self.prog} --help')")


# -- train --------------------------------------------------------------------------------
def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train one network with EP",
                       description="Train one network with equilibrium propagation.")
    add_config_flags(p)
    p.add_argument("--resume", metavar="SNAPSHOT",
                   help="continue a run from its snapshot.npz up to --epochs in total; only "
                        "live settings (lr, beta, epochs, ...) may be changed")
    p.add_argument("--out", metavar="DIR",
                   help="write snapshot.npz, metrics.csv and config.toml here")
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    p.set_defaults(func=_train)


def _trainer_for(ns):
    from xyprop.engine import Trainer, load_snapshot

    if not ns.resume:
        return Trainer(build_config(ns))
    if ns.config:
        raise ValueError("--resume and --config cannot be combined: a resumed run keeps the "
                         "config stored in its snapshot")
    snap = load_snapshot(ns.resume)
    changes = explicit_fields(ns)
    fixed = sorted(k for k, v in changes.items()
                   if k not in Trainer.LIVE_FIELDS and v != getattr(snap.config, k))
    if fixed:
        raise ValueError(f"--resume: cannot change {', '.join(map(flag, fixed))} of a run; "
                         "allowed: " + ", ".join(map(flag, Trainer.LIVE_FIELDS)))
    return Trainer.from_snapshot(snap, **{k: v for k, v in changes.items()
                                          if k in Trainer.LIVE_FIELDS})


def _train(ns) -> int:
    from tqdm import tqdm

    out = out_dir(ns.out) if ns.out else None
    tr = _trainer_for(ns)
    bar = tqdm(total=tr.config.epochs, initial=tr.epoch, unit="epoch", file=sys.stderr,
               disable=None, dynamic_ncols=True)

    def progress(t) -> None:
        m = t.history[-1]
        bar.set_postfix(loss=f"{m['train_loss']:.4g}", acc=f"{m['train_accuracy']:.3f}",
                        refresh=False)
        bar.update(t.epoch - bar.n)

    try:
        interrupted = run_until_interrupt(tr, progress)
    finally:
        bar.close()
    status = 130 if interrupted else 0
    final = tr.snapshot()
    result = tr.result()  # the best epoch when --stop-at-accuracy is set
    if out is not None:
        result.save(out / "snapshot.npz")
        if result.step != final.step:  # the best epoch is kept; the end state still resumes
            final.save(out / "last.npz")
        write_text(out / "metrics.csv", metrics_csv(tr.history))
        write_text(out / "config.toml", tr.config.to_toml())
    summary = {**tr.summary(result), "interrupted": status != 0,
               "out": str(out) if out else None}
    if ns.json:
        emit_json(summary)
    else:
        _print_metrics(summary)
        if out is not None:
            print(f"wrote {out / 'snapshot.npz'}, metrics.csv, config.toml")
    return status


def _print_metrics(d: dict) -> None:
    def f(x, spec):
        return "-" if x is None else format(x, spec)

    print(f"epoch {d['epochs']}: train loss {f(d['train_loss'], '.4f')}, "
          f"accuracy {f(d['train_accuracy'], '.3f')}; test loss {f(d['test_loss'], '.4f')}, "
          f"accuracy {f(d['test_accuracy'], '.3f')}; {d['n_couplings']} couplings"
          + (f"; {d['seconds']:.1f} s" if "seconds" in d else ""))


# -- evaluate -----------------------------------------------------------------------------
def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a saved snapshot on train and test data")
    p.add_argument("snapshot", metavar="SNAPSHOT", help="a snapshot.npz written by train")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_evaluate)


def _evaluate(ns) -> int:
    from xyprop.engine import Trainer, load_snapshot

    snap = load_snapshot(ns.snapshot)
    tr = Trainer.from_snapshot(snap)
    train, test = tr.evaluate("train"), tr.evaluate("test")
    d = {"epochs": snap.epoch, "train_loss": finite(train.loss),
         "train_accuracy": train.accuracy, "test_loss": finite(test.loss),
         "test_accuracy": test.accuracy, "n_couplings": tr.net.n_edges,
         "failures": train.failures + test.failures}
    if ns.json:
        emit_json(d)
    else:
        _print_metrics(d)
    return 0


# -- info ---------------------------------------------------------------------------------
def _add_info(sub) -> None:
    p = sub.add_parser("info", help="node, coupling and parameter counts of a network")
    add_config_flags(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_info)


def _info(ns) -> int:
    from xyprop.engine import build_network

    cfg = build_config(ns)
    n_in, n_out = TASK_DIMS[cfg.task]
    net = build_network(cfg, n_in, n_out)
    d = {"task": cfg.task, "arch": cfg.arch, "n_nodes": net.n_nodes,
         "n_couplings": net.n_edges, "n_parameters": n_parameters(net, cfg),
         "n_coupling_parameters": net.n_params, "n_inputs": n_in, "n_outputs": n_out,
         "depth": net.depth, "shape": list(net.shape) if net.shape else None}
    if ns.json:
        emit_json(d)
    else:
        for k, v in d.items():
            print(f"{k:22s} {v}")
    return 0


# -- gradcheck ----------------------------------------------------------------------------
def _add_gradcheck(sub) -> None:
    p = sub.add_parser("gradcheck", help="compare EP gradients with the exact gradient",
                       description="EP (one-sided and centered) against the exact gradient "
                                   "(implicit differentiation) at the network training "
                                   "would start from.")
    add_config_flags(p)
    p.add_argument("--out", metavar="FILE.npz", help="write every array to this .npz")
    p.add_argument("--json", action="store_true")
    p.add_argument("--samples", type=int, default=4, metavar="N",
                   help="training samples to average over (default: 4)")
    p.add_argument("--betas", type=float_list, nargs="+", metavar="B[,B...]",
                   help="nudging strengths (default: 8 from 1e-4 to 10^-0.5)")
    p.set_defaults(func=_gradcheck)


def _gradcheck(ns) -> int:
    import numpy as np

    from xyprop.engine.gradcheck import DEFAULT_BETAS, gradcheck

    cfg = build_config(ns)
    betas = [b for group in ns.betas for b in group] if ns.betas else DEFAULT_BETAS
    out = Path(ns.out) if ns.out else None
    if out is not None and not out.parent.is_dir():
        raise OSError(f"--out {ns.out!r}: folder {str(out.parent)!r} does not exist")
    r = gradcheck(cfg, n_samples=ns.samples, betas=betas, seed=cfg.seed)
    if out is not None:
        atomic_write(out, lambda fh: np.savez(fh, **{k: np.asarray(v) for k, v in r.items()}))
    keys = ("cosine_one_sided", "cosine_centered", "rel_error_one_sided",
            "rel_error_centered", "cosine_full_one_sided", "cosine_full_centered",
            "rel_error_full_one_sided", "rel_error_full_centered", "runaways_centered")
    d = {"n_couplings": int(r["src"].size), "samples": int(r["free_phases"].shape[0]),
         "excluded_samples": r["excluded_samples"], "free_failures": r["free_failures"],
         "true_grad_norm": float(np.linalg.norm(r["true_grad"])),
         "betas": r["betas"].tolist(),
         **{k: [finite(float(v)) for v in r[k]] for k in keys[:-1]},
         "runaways_centered": r["runaways_centered"].tolist(),
         "out": str(out) if out else None}
    if ns.json:
        emit_json(d)
        return 0
    full = np.concatenate([r["true_grad"], r["true_grad_h"], r["true_grad_psi"]])
    # With h = 0 the coupling gradient can vanish by symmetry: then judge all parameters.
    use_full = d["true_grad_norm"] < 1e-6 * np.linalg.norm(full)
    print(f"{d['samples']} samples ({d['excluded_samples']} excluded at an anti-target), "
          f"{d['n_couplings']} couplings, |true coupling grad| = {d['true_grad_norm']:.3g}")
    if use_full:
        print("the coupling gradient vanishes here; comparing all parameters (w, h, psi)")
    print(f"{'beta':>10} {'cos 1-sided':>12} {'cos centered':>13} {'err 1-sided':>12} "
          f"{'err centered':>13} {'runaways':>9}")
    for k, b in enumerate(d["betas"]):
        c1, c2, e1, e2 = (d[key][k] for key in (keys[4:8] if use_full else keys[:4]))
        print(f"{b:10.3g} {c1:12.6f} {c2:13.6f} {e1:12.2e} {e2:13.2e} "
              f"{d['runaways_centered'][k]:9d}")
    if out is not None:
        print(f"wrote {out}")
    return 0


# -- bench --------------------------------------------------------------------------------
def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="EP speed benchmarks against reference numbers")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quick", action="store_true", help="small, fast cases only")
    p.set_defaults(func=_bench)


def _app_function(module: str, name: str):
    """``xyprop.app.<module>.<name>``, imported only when its command runs."""
    import importlib

    try:
        mod = importlib.import_module(f"xyprop.app.{module}")
    except ModuleNotFoundError as e:
        if e.name != f"xyprop.app.{module}":
            raise
        mod = None
    if not hasattr(mod, name):
        raise RuntimeError(f"xyprop.app.{module}.{name} is not available in this xyprop "
                           "installation")
    return getattr(mod, name)


def _bench(ns) -> int:
    rows = _app_function("benchmark", "run_benchmarks")(quick=ns.quick)
    if ns.json:
        emit_json(rows)
        return 0
    print(f"{'benchmark':32s} {'samples/s':>12} {'reference':>12} {'ratio':>7}")
    for r in rows:
        ref = r.get("reference_samples_per_s")
        ratio = r.get("ratio")
        print(f"{r['name']:32s} {r['samples_per_s']:12.0f} "
              f"{'-' if ref is None else format(ref, '12.0f'):>12} "
              f"{'-' if ratio is None else format(ratio, '7.2f'):>7}")
    return 0


# -- serve --------------------------------------------------------------------------------
def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number 0..65535")
    return v


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="start the interactive dashboard")
    p.add_argument("--port", type=_port, default=5006, help="0 picks a free port "
                                                            "(default: 5006)")
    p.add_argument("--address", default="127.0.0.1", help="(default: 127.0.0.1)")
    p.add_argument("--show", action=argparse.BooleanOptionalAction, default=True,
                   help="open a browser tab (default: yes)")
    p.set_defaults(func=_serve)


def _serve(ns) -> int:
    serve = _app_function("server", "serve")
    try:
        serve(port=ns.port, address=ns.address, show=ns.show)
    except KeyboardInterrupt:  # Ctrl-C is how a server is meant to stop
        pass
    return 0


# -- sweep --------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return v


def _add_sweep(sub) -> None:
    p = sub.add_parser("sweep", help="run a grid of experiments on Dask",
                       description="Run the product of a sweep file's [grid] over its [base] "
                                   "config on Dask; results go to DIR/results.csv, one row "
                                   "per run; runs already there are skipped.")
    p.add_argument("sweep_file", metavar="SWEEP.toml")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="use a running Dask scheduler (tcp://host:port) instead of starting "
                        "a local cluster")
    p.add_argument("--out", metavar="DIR", help="results folder (default: the sweep file's "
                                                "name next to it)")
    p.add_argument("--workers", type=_positive_int, metavar="N",
                   help="local cluster worker processes (default: one per core)")
    p.add_argument("--json", action="store_true", help="print the result rows as JSON")
    p.set_defaults(func=_sweep)


def _sweep(ns) -> int:
    from xyprop.engine.sweep import Sweep, run_sweep

    if ns.scheduler and ns.workers:
        raise ValueError("--workers sets the size of a local cluster; it cannot be combined "
                         "with --scheduler")
    sweep = Sweep.load(ns.sweep_file)
    out = Path(ns.out) if ns.out else Path(ns.sweep_file).with_suffix("")
    rows = run_sweep(sweep, out, scheduler=ns.scheduler, workers=ns.workers)
    errors = sum(r.get("status") == "error" for r in rows)
    if ns.json:
        emit_json(rows)
    else:
        print(f"{len(rows)} runs in {out / 'results.csv'} ({errors} failed)")
    return 0


COMMANDS = (_add_train, _add_evaluate, _add_info, _add_gradcheck, _add_bench, _add_serve,
            _add_sweep)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="xyprop", description="XY-model oscillator networks trained with "
                                                "equilibrium propagation.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``xyprop`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        ns = parser.parse_args(argv)
    except UsageError as e:
        print(f"xyprop: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help / --version
        return int(e.code or 0)
    if ns.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(ns.func(ns) or 0)
    except USER_ERRORS as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"xyprop: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xyprop: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
