"""MNIST-scale benchmark (issue 4): EP samples/s, implied seconds per 60k epoch, peak memory.

    python bench/bench_mnist.py [--quick] [--runs N] [--repeats N] [--epoch] [--json]
                                [--data PATH]

The cases are ``xyprop.app.benchmark.bench_mnist`` (also part of ``xyprop bench``);
``--runs`` repeats them and reports the median over runs. ``--epoch`` also times one real
training epoch (``Trainer.step`` over every training digit, batch 50) to check the implied
number. Data: ``--data``, else ``../shared/data/mnist10k.npz`` next to the repository if it
exists (8,000 train / 2,000 test), else the shipped 600-digit sample. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from xyprop.app.benchmark import (
    EPOCH_SAMPLES,
    TARGET_EPOCH_SECONDS,
    bench_mnist,
    mnist_trainer,
    peak_rss_mb,
    reset_peak_rss,
)

LOCAL_10K = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist10k.npz"


def default_data() -> str | None:
    """The 10,000-digit file of this machine if present, else None (the shipped sample)."""
    return str(LOCAL_10K) if LOCAL_10K.is_file() else None


def _load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def time_epoch(data_dir: str | None, intra: int = 0, parallel: bool = False,
               train_size: int = 8000, test_size: int = 2000) -> dict:
    """One real training epoch, timed: ``Trainer.step`` until the epoch ends.

    ``seconds_steps`` excludes the end-of-epoch evaluation (``seconds_eval``: free
    relaxations of the whole training and test splits); ``seconds_ep`` is the part spent in
    ``System.ep_gradient``, the rest of a step (optimiser, snapshot copy) is
    ``seconds_overhead``.
    """
    sizes = {} if data_dir is None else dict(train_size=train_size, test_size=test_size)
    tr = mnist_trainer(intra, data_dir, 0, parallel=parallel, epochs=1, **sizes)
    n = tr.task.x_train.shape[0]
    spent = {"ep": 0.0, "eval": 0.0, "eval_cpu": 0.0}

    def timed(key, fn):
        def wrapper(*a, **kw):
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **kw)
            finally:
                spent[key] += time.perf_counter() - t0
                spent[key + "_cpu"] = spent.get(key + "_cpu", 0.0) + time.process_time() - c0
        return wrapper

    # instance attributes shadow the methods Trainer.step calls
    tr.system.ep_gradient = timed("ep", tr.system.ep_gradient)
    tr._end_epoch = timed("eval", tr._end_epoch)
    tr.system.ep_gradient(tr.task.x_train[:2], tr.task.targets(tr.task.y_train[:2]), tr.w,
                          tr.h, tr.psi, beta=0.1, rng=np.random.default_rng(0))  # warm-up
    spent["ep"] = spent["ep_cpu"] = 0.0
    load, resets = _load(), reset_peak_rss()
    t0 = time.perf_counter()
    c0 = time.process_time()
    while tr.epoch < 1:
        tr.step()
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    steps = total - spent["eval"]
    rate = n / steps
    return {
        "name": f"epoch/{'intra4' if intra else 'base'}/{'parallel' if parallel else 'serial'}",
        "train_digits": n, "test_digits": tr.task.x_test.shape[0],
        "batch_size": tr.config.batch_size, "steps": tr.step_count, "data": tr.task.split,
        "seconds_steps": steps, "seconds_ep": spent["ep"],
        "seconds_overhead": steps - spent["ep"], "seconds_eval": spent["eval"],
        "seconds_total": total, "cpu_seconds_total": cpu,
        "cpu_seconds_steps": cpu - spent["eval_cpu"], "cpu_seconds_eval": spent["eval_cpu"],
        "samples_per_s": rate, "cpu_samples_per_s": n / (cpu - spent["eval_cpu"]),
        "seconds_per_60k_epoch": EPOCH_SAMPLES / rate,
        "seconds_per_60k_epoch_with_eval": EPOCH_SAMPLES / rate
        + spent["eval"] * (EPOCH_SAMPLES + 10_000) / (n + tr.task.x_test.shape[0]),
        "meets_target": EPOCH_SAMPLES / rate < TARGET_EPOCH_SECONDS,
        "mean_iterations": tr.history[-1]["mean_iterations"],
        "test_accuracy": tr.history[-1]["test_accuracy"], "peak_rss_mb": peak_rss_mb(),
        "peak_rss_method": "VmHWM during the epoch" if resets else "ru_maxrss (lifetime)",
        "load_average": load, "load_average_end": _load(),
    }


def summarise(runs: list[list[dict]]) -> list[dict]:
    """Median over runs of each case's samples/s (and the other timing fields)."""
    out = []
    for cases in zip(*runs, strict=True):
        rates = [c["samples_per_s"] for c in cases]
        mid = float(np.median(rates))
        out.append({**cases[0], "samples_per_s": mid, "seconds_per_60k_epoch": EPOCH_SAMPLES / mid,
                    "meets_target": EPOCH_SAMPLES / mid < TARGET_EPOCH_SECONDS,
                    "statistic": f"median of {len(cases)} runs (each a median of "
                                 f"{cases[0]['repeats']} calls)",
                    "runs_samples_per_s": rates,
                    "cpu_samples_per_s": float(np.median([c["cpu_samples_per_s"]
                                                          for c in cases])),
                    "iterations": float(np.median([c["iterations"] for c in cases])),
                    "peak_rss_mb": max(c["peak_rss_mb"] or 0.0 for c in cases) or None,
                    "load_average": [c["load_average"] for c in cases],
                    "agrees": all(c["agrees"] for c in cases)})
    return out


def format_cases(cases: list[dict]) -> str:
    head = (f"{'case':<30}{'samples/s':>10}{'s/60k':>8}{'iters':>7}{'peak MB':>9}  "
            f"{'runs (samples/s)':<24}{'load':<16} agrees")
    lines = [head, "-" * len(head)]
    for c in cases:
        runs = " ".join(f"{r:.0f}" for r in c.get("runs_samples_per_s", [c["samples_per_s"]]))
        load = c["load_average"] if isinstance(c["load_average"], list) else [c["load_average"]]
        lines.append(f"{c['name']:<30}{c['samples_per_s']:>10.0f}"
                     f"{c['seconds_per_60k_epoch']:>8.1f}{c['iterations']:>7.1f}"
                     f"{c['peak_rss_mb'] or 0:>9.0f}  {runs:<24}"
                     f"{' '.join(f'{x:.2f}' for x in load if x is not None):<16} {c['agrees']}")
    return "\n".join(lines)


def format_epochs(rows: list[dict]) -> str:
    head = (f"{'epoch run':<24}{'digits':>7}{'steps s':>9}{'in EP s':>9}{'other s':>9}"
            f"{'eval s':>8}{'samples/s':>10}{'s/60k':>8}{'+eval':>8}{'peak MB':>9}{'load':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['name']:<24}{r['train_digits']:>7}{r['seconds_steps']:>9.2f}"
                     f"{r['seconds_ep']:>9.2f}{r['seconds_overhead']:>9.2f}"
                     f"{r['seconds_eval']:>8.2f}{r['samples_per_s']:>10.0f}"
                     f"{r['seconds_per_60k_epoch']:>8.1f}"
                     f"{r['seconds_per_60k_epoch_with_eval']:>8.1f}{r['peak_rss_mb']:>9.0f}"
                     f"{r['load_average']:>6.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--quick", action="store_true", help="small batches (a smoke run)")
    ap.add_argument("--runs", type=int, default=3, help="whole benchmark runs (median)")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per case and run")
    ap.add_argument("--epoch", action="store_true", help="also time real training epochs")
    ap.add_argument("--data", default=None, help="MNIST folder or .npz (default: see above)")
    a = ap.parse_args(argv)
    for name in ("runs", "repeats"):
        if getattr(a, name) < 1:
            ap.error(f"--{name}: got {getattr(a, name)}; allowed: an integer >= 1")
    data = a.data or (None if a.quick else default_data())
    runs = [bench_mnist(data, quick=a.quick, repeats=a.repeats) for _ in range(a.runs)]
    cases = summarise(runs)
    epochs = []
    if a.epoch:
        for intra, parallel in ((0, False), (0, True), (4, False)):
            epochs.append(time_epoch(data, intra, parallel,
                                     *((400, 100) if a.quick else (8000, 2000))))
    if a.json:
        print(json.dumps({"cases": cases, "epochs": epochs}, indent=1))
    else:
        print(f"data: {cases[0]['data']}")
        print(format_cases(cases))
        if epochs:
            print()
            print(format_epochs(epochs))
    return 0 if all(c["agrees"] for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
