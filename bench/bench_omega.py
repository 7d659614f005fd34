"""Over-relaxation study for the exact solver: sweeps to tolerance and EP samples/s vs omega.

Not a test. For each network (parameters after a short real training run, the task's real
inputs, the same random starts for every omega) it times ``System.ep_gradient`` with the
exact solver at fixed omegas and at ``auto_omega(depth)``, and reports mean sweeps per
phase (free and nudged), samples/s (median of repeats) and relaxations that hit the cap.

    python bench/bench_omega.py [--quick] [--json] [--fine] [--training]

``--fine`` adds omegas 1.1 .. 1.97 in small steps to locate the best value. ``--training``
instead trains lattices from scratch with ``auto_omega`` and with candidate rules and
reports mean sweeps per relaxation over the run (the omega that matters is the one in
force during training, when the bias fields have grown) and wall seconds.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from xyprop.app.benchmark import _trained
from xyprop.engine import Config, System, Trainer, auto_omega, build_network

OMEGAS = (1.0, 1.3, 1.5, 1.7, 1.8, 1.9)
FINE = (1.1, 1.2, 1.4, 1.45, 1.55, 1.6, 1.65, 1.75, 1.85, 1.875, 1.925, 1.95, 1.97)

# One core, and P24's 4-neighbour lattice and start: the work these numbers were measured
# on before 8 neighbours and parallel kernels became the defaults.
ONE_CORE = {"parallel": False, "neighbourhood": 4, "init_mean": 1.0}

# name, config, epochs trained first, rows (task inputs tiled with fresh starts)
NETWORKS = [
    ("xor 4x4", Config(task="xor", rows=4, cols=4, **ONE_CORE), 20, 256),
    ("iris 10x10", Config(task="iris", rows=10, cols=10, **ONE_CORE), 2, 105),
    ("iris 16x16", Config(task="iris", rows=16, cols=16, **ONE_CORE), 2, 105),
    ("digits [64,100,10]", Config(task="digits", arch="layered", layers=(100,),
                                  parallel=False), 1, 200),
]


def study(name, config, epochs, rows, omegas, repeats=3, seed=7):
    """Rows of {network, omega, auto, sweeps_free, sweeps_nudged, samples_per_s, failures}."""
    tr = _trained(config, epochs)
    c, net, task = tr.config, tr.net, tr.task
    x = np.resize(task.x_train, (rows, task.n_inputs))
    tg = np.resize(task.targets(task.y_train), (rows, task.n_outputs))
    s0 = System(net, cost=c.cost, tol=c.tol, max_iter=c.max_iter)
    phi = s0.initial_phases(x, np.random.default_rng(seed))
    w_edge = net.expand(tr.w)
    auto = auto_omega(net.depth)
    out = []
    for om in sorted(set(omegas) | {auto}):
        s = System(net, cost=c.cost, tol=c.tol, max_iter=c.max_iter, omega=om)
        s.ep_gradient(x[:2], tg[:2], tr.w, tr.h, tr.psi, beta=c.beta, rng=None,
                      phi_start=phi[:2])
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            r = s.ep_gradient(x, tg, tr.w, tr.h, tr.psi, beta=c.beta, rng=None, phi_start=phi)
            times.append(time.perf_counter() - t0)
        free = s.relax(phi, w_edge, tr.h, tr.psi)
        nud = s.relax(free.phi, w_edge, tr.h, tr.psi, tg, c.beta)
        out.append({"network": name, "n_nodes": net.n_nodes, "depth": net.depth,
                    "epochs": tr.epoch, "omega": om, "auto": om == auto,
                    "sweeps_free": float(free.iters.mean()),
                    "sweeps_nudged": float(nud.iters.mean()),
                    "samples_per_s": rows / float(np.median(times)),
                    "failures": int(r.failures)})
    return out


RULES = {
    "auto": lambda depth: auto_omega(depth),
    "min(auto, 1.6)": lambda depth: min(auto_omega(depth), 1.6),
    "min(auto, 1.5 + 0.01 depth)": lambda depth: min(auto_omega(depth), 1.5 + 0.01 * depth),
}
TRAINING = [("xor", 4, 100), ("xor", 8, 60), ("iris", 10, 6), ("iris", 16, 3), ("iris", 20, 2)]


def training_cost(task, side, epochs, quick=False):
    """Mean EP sweeps per phase over a whole training run, per omega rule."""
    out = []
    for rule, fn in RULES.items():
        base = Config(task=task, rows=side, cols=side, epochs=max(1, epochs // 4)
                      if quick else epochs, **ONE_CORE)
        om = fn(build_network(base, *_io(task)).depth)
        tr = Trainer(base.replace(omega=om))
        t0 = time.perf_counter()
        tr.run()
        hist = tr.history
        out.append({"network": f"{task} {side}x{side}", "rule": rule, "omega": om,
                    "epochs": tr.epoch, "seconds": time.perf_counter() - t0,
                    "mean_sweeps": float(np.mean([h["mean_iterations"] for h in hist])),
                    "first_epoch_sweeps": hist[0]["mean_iterations"],
                    "final_train_accuracy": hist[-1]["train_accuracy"]})
    return out


def _io(task):
    return {"xor": (2, 1), "iris": (4, 3)}[task]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rows, one repeat")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--fine", action="store_true", help="add a finer omega grid")
    ap.add_argument("--training", action="store_true", help="compare rules over training runs")
    a = ap.parse_args(argv)
    if a.training:
        Trainer(Config(task="xor", rows=3, cols=3, epochs=1)).run()  # load numba's cache
        rows = [r for t in TRAINING for r in training_cost(*t, quick=a.quick)]
        if a.json:
            print(json.dumps(rows, indent=1))
            return
        print(f"{'network':<12}{'rule':<30}{'omega':>7}{'epochs':>7}{'mean sw':>9}"
              f"{'1st ep sw':>10}{'seconds':>9}")
        for r in rows:
            print(f"{r['network']:<12}{r['rule']:<30}{r['omega']:>7.3f}{r['epochs']:>7}"
                  f"{r['mean_sweeps']:>9.1f}{r['first_epoch_sweeps']:>10.1f}"
                  f"{r['seconds']:>9.2f}")
        return
    omegas = OMEGAS + (FINE if a.fine else ())
    rows = []
    for name, config, epochs, n in NETWORKS:
        n = min(n, 32) if a.quick else n
        rows += study(name, config, 0 if a.quick else epochs, n, omegas,
                      repeats=1 if a.quick else 3)
    if a.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'network':<20}{'depth':>6}{'omega':>8}{'free sw':>9}{'nudged sw':>11}"
          f"{'samples/s':>11}{'fail':>6}")
    for r in rows:
        tag = " auto" if r["auto"] else ""
        print(f"{r['network']:<20}{r['depth']:>6}{r['omega']:>8.3f}{r['sweeps_free']:>9.1f}"
              f"{r['sweeps_nudged']:>11.1f}{r['samples_per_s']:>11.1f}{r['failures']:>6}{tag}")
    for name in dict.fromkeys(r["network"] for r in rows):
        sub = [r for r in rows if r["network"] == name]
        auto = next(r for r in sub if r["auto"])
        fast = max(sub, key=lambda r: r["samples_per_s"])
        few = min(sub, key=_sweeps)
        print(f"{name}: fewest sweeps at omega {few['omega']:.3f} ({_sweeps(few):.1f}), auto "
              f"{auto['omega']:.3f} needs {_sweeps(auto) / _sweeps(few):.2f}x; fastest omega "
              f"{fast['omega']:.3f}, auto reaches "
              f"{auto['samples_per_s'] / fast['samples_per_s']:.0%} of its samples/s")


def _sweeps(r):
    return r["sweeps_free"] + r["sweeps_nudged"]

if __name__ == "__main__":
    main()
