"""Engine benchmark: EP samples per second of the numba kernels against plain numpy.

One EP sample is what :meth:`xyprop.engine.System.ep_gradient` does for one row: a free
relaxation, a one-sided nudged relaxation (``beta``) from the free minimum, and the
parameter-gradient difference. Three realistic cases (parameters from a short real
training run, the task's real inputs):

- ``xor``: 4x4 lattice;  ``iris``: 10x10 lattice;  ``digits``: layered [64, 100, 10].

For each, ``<task>/exact`` times the exact solver (red/black coordinate descent with
over-relaxation, the default) and ``<task>/gradient-flow`` the numba gradient flow, both
against :func:`numpy_gradient_flow`, a vectorised numpy implementation of the *same*
gradient flow as the engine (explicit Euler with the same step rule, step cap, tolerance and
stopping rule, inputs entering as a fixed field as in the engine). The numpy reference
uses elementwise operations, gathers, ``einsum`` and sums over a padded neighbour table
(no BLAS), so BLAS threading settings (``OPENBLAS_*``) do not touch it, and it drops
converged rows from the working set.
Everything runs on one core (the engine with ``parallel=False``).

MNIST scale (issue 4, :func:`bench_mnist`): ``mnist/<net>/<params>/<mode>`` times EP on
real digits for P26's 28x28 -> 23x23 (6x6 window, stride 1) -> 10 (dense readout) network,
``base`` and ``intra4`` (4-neighbour couplings inside the sheet), with the parameters at
initialisation and after a short training (``init``, ``trained``), ``serial`` and
``parallel`` (numba prange over samples). These cases have no numpy reference (those fields
are None); they report ``seconds_per_60k_epoch`` and the process's ``peak_rss_mb``.
"""

from __future__ import annotations

import functools
import os
import sys
import time

import numpy as np

from xyprop.engine import Config, Relaxation, System, Trainer, wrap

_COSTS = ("log-cosine", "cosine")
# The engine's gradient flow caps every Euler step at this many radians (kernels.py).
STEP_CAP = 0.1
# An output this close to its anti-target under a negative nudge is a run-away (kernels.py).
RUNAWAY_GAP = 1e-3


def euler_dt(net, w_edge, h, beta) -> float:
    """The engine's Euler step: ``1.8 / (2 max_i sum_j |w_ij| + max |h| + |beta|)``.

    Gershgorin bounds the largest Hessian eigenvalue by that denominator, and Euler is
    stable below ``2 / lambda_max``. ``h`` counts on free sites only (as in the engine).
    """
    rows = np.bincount(np.r_[net.src, net.dst], weights=np.abs(np.r_[w_edge, w_edge]),
                       minlength=net.n_nodes)
    h = np.abs(np.asarray(h, dtype=np.float64) * net.free)
    return 1.8 / max(2 * rows.max() + h.max() + abs(beta), 1e-12)


class _Stencil:
    """Couplings among the free sites as a padded neighbour table; inputs as a fixed field.

    Free sites are numbered ``0..F-1`` in the order of ``free`` (their node indices).
    Neighbour ``k`` of free site ``i`` is free site ``nbr[k, i]`` with coupling ``w[k, i]``;
    sites with fewer than ``D`` free neighbours are padded with coupling 0 (reading site 0,
    harmlessly). Couplings to clamped inputs never change during a relaxation, so, as in the
    engine, they enter once as a per-sample field (:meth:`fixed_field`).
    """

    def __init__(self, net, w_edge):
        free = net.free
        self.free = np.flatnonzero(free)
        self.F = self.free.size
        pos = np.full(net.n_nodes, -1, dtype=np.int64)
        pos[self.free] = np.arange(self.F)
        ends = np.r_[net.src, net.dst]
        others = np.r_[net.dst, net.src]
        wa = np.r_[w_edge, w_edge].astype(np.float64)
        inner = free[ends] & free[others]
        e, o, w = pos[ends[inner]], pos[others[inner]], wa[inner]
        order = np.argsort(e, kind="stable")
        e, o, w = e[order], o[order], w[order]
        deg = np.bincount(e, minlength=self.F)
        self.D = max(int(deg.max()) if deg.size else 0, 1)
        slot = np.arange(e.size) - np.r_[0, np.cumsum(deg)[:-1]][e] if e.size else e
        self.nbr = np.zeros((self.D, self.F), dtype=np.int64)
        self.w = np.zeros((self.D, self.F))
        self.nbr[slot, e] = o
        self.w[slot, e] = w
        self.flat = self.nbr.ravel()
        cross = free[ends] & ~free[others]
        self.in_site, self.in_node, self.in_w = pos[ends[cross]], others[cross], wa[cross]

    def fixed_field(self, phi, hx, hy):
        """Bias plus the pull of the clamped inputs on each free site: (S, 2, F)."""
        S = phi.shape[0]
        base = np.empty((S, 2, self.F))
        base[:, 0] = hx[self.free]
        base[:, 1] = hy[self.free]
        x = phi[:, self.in_node]
        for k, trig in enumerate((np.cos, np.sin)):
            contrib = trig(x) * self.in_w
            for row in range(S):  # S small bincounts: (S, K) -> (S, F) without np.add.at
                base[row, k] += np.bincount(self.in_site, contrib[row], minlength=self.F)
        return base

    def field(self, cs):
        """Coupling part of the local field, ``sum_j w_ij (cos phi_j, sin phi_j)``.

        ``cs`` (A, 2, F) cosines and sines of the free phases. Returns (A, 2, F).
        """
        A = cs.shape[0]
        g = cs[:, :, self.flat].reshape(A, 2, self.D, self.F)
        if self.D <= 8:  # einsum's own loops (no BLAS) beat a temporary on short lists
            return np.einsum("akdf,df->akf", g, self.w)
        g *= self.w
        return g.sum(axis=2)


def numpy_gradient_flow(net, phi, w_edge, h, psi, targets=None, beta=0.0, *,
                        cost="log-cosine", tol=1e-6, max_iter=100000) -> Relaxation:
    """Relax ``E + beta C`` by explicit-Euler gradient flow, the whole batch at once.

    The same algorithm as the engine's ``solver="gradient-flow"`` (kernels.py
    ``_relax_flow_one``): each step evaluates the force ``f = -d(E + beta C)/dphi`` on the
    free sites and stops a row once ``max |f| < tol``; otherwise every free site moves by
    ``clip(dt f, +-0.1)`` with ``dt`` from :func:`euler_dt`. With ``beta < 0`` and the
    log-cosine cost a row whose step would land an output within 1e-3 of its anti-target
    stops as a run-away (status 2) before that step. Converged rows leave the working set,
    so they cost nothing more. Vectorised over samples and couplings, no BLAS.

    Parameters
    ----------
    net : Network
    phi : ndarray (S, N)   start phases (inputs clamped); not modified
    w_edge : ndarray (E,)   per-edge couplings;  h, psi : ndarray (N,) bias fields
    targets : ndarray (S, n_out), optional   target phases of the outputs
    beta : float   nudging strength (negative: a centered EP minus phase)
    cost : {"log-cosine", "cosine"};  tol : float   force tolerance;  max_iter : int

    Returns
    -------
    Relaxation   phases (S, N), steps (S,), residual max |f| (S,), status (S,)
        (0 converged, 1 step cap, 2 run-away), as the engine's ``System.relax``.
    """
    if cost not in _COSTS:
        raise ValueError(f"cost: got {cost!r}; allowed: one of {', '.join(_COSTS)}")
    out = np.array(phi, dtype=np.float64)
    S = out.shape[0]
    n_out = net.output_nodes.size
    targets = np.zeros((S, n_out)) if targets is None else np.asarray(targets, np.float64)
    h = np.asarray(h, dtype=np.float64) * net.free
    dt = euler_dt(net, w_edge, h, beta)
    st = _Stencil(net, w_edge)
    F = st.F
    opos = np.searchsorted(st.free, net.output_nodes)  # outputs are free sites
    nudged = beta != 0.0 and n_out > 0
    runaway_check = beta < 0.0 and cost == "log-cosine" and n_out > 0
    iters = np.full(S, max_iter, dtype=np.int64)
    resid = np.zeros(S)
    status = np.ones(S, dtype=np.int64)
    rows = np.arange(S)
    work = out[:, st.free]  # (A, F) phases of the rows still moving
    base = st.fixed_field(out, h * np.cos(psi), h * np.sin(psi))
    tg = targets
    cs = np.empty((S, 2, F))
    for it in range(1, max_iter + 1):
        A = work.shape[0]
        c = cs[:A]
        np.cos(work, out=c[:, 0])
        np.sin(work, out=c[:, 1])
        fld = st.field(c)
        fld += base
        # -dE/dphi_i = F_y cos phi_i - F_x sin phi_i
        f = fld[:, 1] * c[:, 0]
        f -= fld[:, 0] * c[:, 1]
        if nudged:
            d = wrap(work[:, opos] - tg)
            f[:, opos] -= beta * (np.tan(0.5 * d) if cost == "log-cosine" else np.sin(d))
        maxf = np.abs(f).max(axis=1) if F else np.zeros(A)
        stop = maxf < tol
        f *= dt
        np.clip(f, -STEP_CAP, STEP_CAP, out=f)
        ran = np.zeros(A, dtype=bool)
        if runaway_check:
            gap = np.pi - np.abs(wrap(work[:, opos] - tg) + f[:, opos])
            ran = ~stop & (gap < RUNAWAY_GAP).any(axis=1)
        if stop.any() or ran.any():
            end = stop | ran
            out[np.ix_(rows[end], st.free)] = work[end]
            iters[rows[end]] = it
            resid[rows[end]] = maxf[end]
            status[rows[end]] = np.where(stop[end], 0, 2)
            keep = ~end
            rows, work, base, tg, f = rows[keep], work[keep], base[keep], tg[keep], f[keep]
            maxf = maxf[keep]
            if rows.size == 0:
                break
        work += f
        if it == max_iter:  # the cap: like the kernel, the last step has been taken
            out[np.ix_(rows, st.free)] = work
            resid[rows] = maxf
    return Relaxation(out, iters, resid, status)


def numpy_ep_gradient(net, phi_start, targets, w, h, psi, *, beta, cost="log-cosine",
                      tol=1e-6, max_iter=100000) -> dict:
    """One-sided EP estimate with :func:`numpy_gradient_flow`, the whole batch at once.

    Free relaxation from ``phi_start``, nudged relaxation (``+beta``) from the free minimum,
    then ``(1/beta) [dE/dtheta(phi_beta) - dE/dtheta(phi_0)]`` averaged over samples, with
    ``dE/dw_ij = -cos(phi_i - phi_j)``, ``dE/dh_i = -cos(phi_i - psi_i)``,
    ``dE/dpsi_i = -h_i sin(phi_i - psi_i)`` (physics.md).

    Parameters
    ----------
    net : Network;  phi_start : (S, N) start phases, inputs clamped
    targets : (S, n_out);  w : (n_params,) couplings;  h, psi : (N,)

    Returns
    -------
    dict with ``grad_w`` (n_params,), ``grad_h`` and ``grad_psi`` (N,) (zero on inputs),
    ``phi0`` and ``phib`` (S, N), ``iters`` (mean steps per phase), ``failures``.
    """
    w_edge = np.asarray(w, dtype=np.float64)[net.param_index]
    kw = dict(cost=cost, tol=tol, max_iter=max_iter)
    free = numpy_gradient_flow(net, phi_start, w_edge, h, psi, targets, 0.0, **kw)
    nudged = numpy_gradient_flow(net, free.phi, w_edge, h, psi, targets, beta, **kw)
    a = 1.0 / (beta * free.phi.shape[0])
    hf = np.asarray(h, dtype=np.float64) * net.free

    def grads(phi):
        ge = -np.cos(phi[:, net.src] - phi[:, net.dst]).sum(axis=0)
        d = phi - psi
        return ge, -np.cos(d).sum(axis=0), -(hf * np.sin(d)).sum(axis=0)

    hi, lo = grads(nudged.phi), grads(free.phi)
    ge = a * (hi[0] - lo[0])
    return {
        "grad_w": np.bincount(net.param_index, weights=ge, minlength=net.n_params),
        "grad_h": a * (hi[1] - lo[1]) * net.free,
        "grad_psi": a * (hi[2] - lo[2]) * net.free,
        "phi0": free.phi, "phib": nudged.phi,
        "iters": float((free.iters.mean() + nudged.iters.mean()) / 2),
        "failures": int((free.status != 0).sum() + (nudged.status != 0).sum()),
    }


# -- the benchmark ----------------------------------------------------------------------------

# name, config, training epochs before measuring, rows timed (exact, gradient flow and numpy
# reference). The reference and the numba gradient flow relax the same rows from the same
# starts; rows beyond the task's training set repeat its inputs with fresh random starts.
# Lattices are pinned to P24's 4-neighbour prototype with the P24 start (init_mean 1), so
# the cases stay the same work whatever the defaults are.
_P24 = {"neighbourhood": 4, "init_mean": 1.0}
_CASES = {
    False: [
        ("xor", Config(task="xor", rows=4, cols=4, **_P24), 20, 256, 64),
        ("iris", Config(task="iris", rows=10, cols=10, **_P24), 2, 105, 105),
        ("digits", Config(task="digits", arch="layered", layers=(100,)), 1, 200, 10),
    ],
    True: [
        ("xor", Config(task="xor", rows=4, cols=4, **_P24), 2, 64, 16),
        ("iris", Config(task="iris", rows=10, cols=10, **_P24), 0, 21, 7),
        ("digits", Config(task="digits", arch="layered", layers=(100,)), 0, 20, 4),
    ],
}
AGREE_TOL = 1e-4
REQUIRED_KEYS = ("name", "task", "solver", "samples_per_s", "reference_samples_per_s", "ratio",
                 "repeats", "n_samples", "n_reference_samples", "iterations",
                 "reference_iterations", "agrees")


def _trained(config: Config, epochs: int) -> Trainer:
    """A trainer after ``epochs`` full epochs: realistic couplings and bias fields."""
    tr = Trainer(config)
    while tr.epoch < epochs:
        tr.step()
    return tr


def _timed(fn) -> tuple[float, float, object]:
    """Wall and CPU seconds of one call of ``fn()``, and its result."""
    w0, c0 = time.perf_counter(), time.process_time()
    res = fn()
    return time.perf_counter() - w0, time.process_time() - c0, res


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(wrap(a - b)).max()) if a.size else 0.0


def bench_task(name, config, epochs, n_exact, n_flow, repeats=5, seed=12345) -> list[dict]:
    """Time one task: ``<name>/exact`` and ``<name>/gradient-flow``, both vs numpy.

    Every implementation gets a warm-up call (numba compiles or loads its cache), then
    ``repeats`` timed calls on the same rows from the same starts; samples/s is
    ``rows / median seconds``.
    """
    tr = _trained(config, epochs)
    c, net, task = tr.config, tr.net, tr.task
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    n = max(n_exact, n_flow)
    x = np.resize(task.x_train, (n, task.n_inputs))
    tg = np.resize(task.targets(task.y_train), (n, task.n_outputs))
    systems = {s: System(net, cost=c.cost, solver=s, tol=c.tol, max_iter=c.max_iter,
                         omega=c.omega, parallel=False) for s in ("exact", "gradient-flow")}
    phi = systems["exact"].initial_phases(x, np.random.default_rng(seed))
    theta = (tr.w, tr.h, tr.psi)

    def engine(solver, k):
        return lambda: systems[solver].ep_gradient(
            x[:k], tg[:k], *theta, beta=c.beta, rng=None, phi_start=phi[:k])

    def reference(k):
        return lambda: numpy_ep_gradient(net, phi[:k], tg[:k], *theta, beta=c.beta,
                                         cost=c.cost, tol=c.tol, max_iter=c.max_iter)

    jobs = {"exact": (engine("exact", n_exact), engine("exact", 2), n_exact),
            "gradient-flow": (engine("gradient-flow", n_flow), engine("gradient-flow", 2),
                              n_flow),
            "reference": (reference(n_flow), reference(2), n_flow)}
    for _, warm, _ in jobs.values():
        warm()  # untimed: compiling (or loading numba's cache) is not what we measure
    wall = {key: [] for key in jobs}
    cpu = {key: [] for key in jobs}
    last = {}
    # Interleave the implementations within each repeat, so that a change in machine load
    # (the machine may be shared) hits all of them alike.
    for _ in range(repeats):
        for key, (fn, _, _) in jobs.items():
            t_wall, t_cpu, last[key] = _timed(fn)
            wall[key].append(t_wall)
            cpu[key].append(t_cpu)
    runs = {key: (jobs[key][2], float(np.median(wall[key])), wall[key], last[key])
            for key in jobs}
    k_ref, t_ref, times_ref, ref = runs["reference"]
    ref_rate = k_ref / t_ref
    flow = runs["gradient-flow"][3]
    phase_diff = max(_max_diff(flow.phi0, ref["phi0"]), _max_diff(flow.phib, ref["phib"]))
    scale = max(float(np.abs(ref["grad_w"]).max()), 1e-300)
    grad_diff = float(np.abs(flow.grad_w - ref["grad_w"]).max()) / scale
    exact = runs["exact"][3]
    # The exact solver may settle in another of the many XY minima from the same start:
    # informative, not an error.
    same_min = float(np.mean(np.abs(wrap(exact.phi0[:k_ref] - ref["phi0"])).max(axis=1)
                             < AGREE_TOL))
    out = []
    for solver in ("exact", "gradient-flow"):
        k, t, times, r = runs[solver]
        rate = k / t
        cpu_rate = k / float(np.median(cpu[solver]))
        cpu_ref = k_ref / float(np.median(cpu["reference"]))
        out.append({
            "name": f"{name}/{solver}", "task": name, "solver": solver,
            "network": (f"lattice {net.shape[0]}x{net.shape[1]}" if net.shape else
                        f"{net.kind} {[task.n_inputs, *c.layers, task.n_outputs]}"),
            "n_nodes": net.n_nodes, "n_edges": net.n_edges, "epochs_trained": tr.epoch,
            "samples_per_s": rate, "reference_samples_per_s": ref_rate, "ratio": rate / ref_rate,
            "statistic": "median", "repeats": repeats, "seconds": t, "times_s": times,
            "reference_seconds": t_ref, "reference_times_s": times_ref,
            "cpu_samples_per_s": cpu_rate, "cpu_reference_samples_per_s": cpu_ref,
            "cpu_ratio": cpu_rate / cpu_ref, "load_average": load,
            "n_samples": k, "n_reference_samples": k_ref,
            "iterations": float(r.iters), "reference_iterations": ref["iters"],
            "failures": int(r.failures), "reference_failures": ref["failures"],
            "omega": systems["exact"].omega if solver == "exact" else None,
            "tol": c.tol, "beta": c.beta,
            "agrees": bool(phase_diff < AGREE_TOL and ref["failures"] == 0),
            "max_phase_diff": phase_diff, "grad_rel_diff": grad_diff,
            "exact_same_minimum_fraction": same_min,
        })
    return out


# -- MNIST scale (issue 4) ------------------------------------------------------------------

#: P26's MNIST network (28x28 -> 23x23 sheet, 6x6 window, stride 1 -> 10 outputs, dense
#: readout), trained as in the MNIST runs of docs/ (batch 50, Adam, lr 0.02); the variants
#: differ only in the couplings inside the sheet (``intra``).
MNIST_CONFIG = dict(task="mnist", arch="stacked", window=6, stride=1, readout="dense",
                    batch_size=50, lr=0.02, seed=0, epochs=1000)
MNIST_VARIANTS = {"base": 0, "intra4": 4}
EPOCH_SAMPLES = 60_000
TARGET_EPOCH_SECONDS = 90.0  # issue 4: one full 60,000-sample epoch on a 2-core machine
# (digits seen in the short training, rows timed per call)
_MNIST_SIZES = {False: (2000, 200), True: (400, 40)}
_NO_REFERENCE = ("reference_samples_per_s", "ratio", "n_reference_samples",
                 "reference_iterations", "reference_seconds", "reference_times_s",
                 "cpu_reference_samples_per_s", "cpu_ratio", "reference_failures",
                 "max_phase_diff", "grad_rel_diff", "exact_same_minimum_fraction")


def reset_peak_rss() -> bool:
    """Restart this process's peak-RSS counter (Linux VmHWM); False where that is impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process in MB: VmHWM (since the last
    :func:`reset_peak_rss`), else ``ru_maxrss`` (whole lifetime), else None."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes there, KiB here


def mnist_trainer(intra: int = 0, data_dir: str | None = None, digits: int = 2000,
                  **changes) -> Trainer:
    """The benchmark network after training on ``digits`` digits (``digits / 50`` steps).

    ``data_dir`` None uses the shipped 600-digit sample (480 train, so the training cycles
    through it); otherwise ``digits`` training (0: all) and 500 test digits of that source.
    ``changes`` override config fields (for example ``parallel``, ``train_size``).
    """
    from xyprop.engine import mnist_sample_path

    sizes = (dict(data_dir=str(mnist_sample_path())) if data_dir is None else
             dict(data_dir=str(data_dir), train_size=digits or None, test_size=500))
    tr = Trainer(Config(**{**MNIST_CONFIG, "intra": intra, **sizes, **changes}))
    while tr.step_count * tr.config.batch_size < digits:
        tr.step()
    return tr


def _interleaved(calls: dict, repeats: int) -> tuple[dict, dict, dict, dict, bool]:
    """Call each of ``calls`` (name -> function) once per round, ``repeats`` rounds.

    Interleaving makes a change of machine load hit every call alike. Returns per name the
    wall and CPU seconds and the peak RSS (MB) of each call, the last result, and whether the
    peak counter could be reset before every call (else peaks are process-lifetime peaks).
    """
    wall, cpu, peak = ({k: [] for k in calls} for _ in range(3))
    last, resets = {}, True
    for _ in range(repeats):
        for key, fn in calls.items():
            resets &= reset_peak_rss()
            t_wall, t_cpu, last[key] = _timed(fn)
            wall[key].append(t_wall)
            cpu[key].append(t_cpu)
            peak[key].append(peak_rss_mb())
    return wall, cpu, peak, last, resets


def bench_mnist(data_dir: str | None = None, quick: bool = False, repeats: int = 5,
                seed: int = 12345) -> list[dict]:
    """EP samples/s at MNIST scale: ``mnist/<base|intra4>/<init|trained>/<serial|parallel>``.

    For each variant: a trainer trained on 2000 digits (quick: 400) gives the ``trained``
    parameters, a fresh one with the same seed the ``init`` ones. One call of
    ``System.ep_gradient`` on 200 real training digits (quick: 40) from fixed random starts
    is timed ``repeats`` times, serial and parallel interleaved; samples/s is rows / median
    seconds and ``seconds_per_60k_epoch`` is 60,000 / samples/s (EP only: no optimiser step,
    no end-of-epoch evaluation). ``peak_rss_mb`` is the process's peak resident memory
    during the case's calls (``peak_rss_method`` says how it was measured); ``agrees`` says
    serial and parallel gave bit-identical phases and gradients and every relaxation
    converged. Reference fields are None.
    """
    import numba

    digits, n_rows = _MNIST_SIZES[bool(quick)]
    repeats = min(repeats, 2) if quick else repeats
    out = []
    for variant, intra in MNIST_VARIANTS.items():
        tr = mnist_trainer(intra, data_dir, digits)
        c, net, task = tr.config, tr.net, tr.task
        rows = min(n_rows, task.x_train.shape[0])
        x, tg = task.x_train[:rows], task.targets(task.y_train[:rows])
        systems = {m: System(net, cost=c.cost, solver=c.solver, tol=c.tol, max_iter=c.max_iter,
                             omega=c.omega, parallel=m == "parallel")
                   for m in ("serial", "parallel")}
        phi = systems["serial"].initial_phases(x, np.random.default_rng(seed))
        kw = dict(beta=c.beta, nudging=c.nudging, rng=None)
        side = net.sheets[-1][2]
        network = (f"stacked 28x28 -> {side}x{side} (window {c.window}, stride {c.stride}) -> "
                   f"{net.output_nodes.size}, {c.readout} readout"
                   + (f", {intra}-neighbour sheet" if intra else ""))
        for label, src in (("init", Trainer(c, task=task, network=net)), ("trained", tr)):
            theta = (src.w, src.h, src.psi)
            for s_ in systems.values():  # untimed: compiling (or loading numba's cache)
                s_.ep_gradient(x[:2], tg[:2], *theta, phi_start=phi[:2], **kw)
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
            calls = {m: functools.partial(s_.ep_gradient, x, tg, *theta, phi_start=phi, **kw)
                     for m, s_ in systems.items()}
            wall, cpu, peak, last, resets = _interleaved(calls, repeats)
            a, b = last["serial"], last["parallel"]
            same = bool(np.array_equal(a.phi0, b.phi0) and np.array_equal(a.phib, b.phib)
                        and np.array_equal(a.grad_w, b.grad_w))
            for mode, r in last.items():
                t = float(np.median(wall[mode]))
                rate = rows / t
                out.append({
                    "name": f"mnist/{variant}/{label}/{mode}", "task": "mnist",
                    "solver": c.solver, "network": network, "n_nodes": net.n_nodes,
                    "n_edges": net.n_edges, "n_params": net.n_params, "intra": intra,
                    "params": label, "epochs_trained": src.epoch,
                    "digits_trained": src.step_count * c.batch_size, "data": task.split,
                    "parallel": mode == "parallel",
                    "threads": numba.get_num_threads() if mode == "parallel" else 1,
                    "samples_per_s": rate, "seconds_per_60k_epoch": EPOCH_SAMPLES / rate,
                    "target_seconds_per_epoch": TARGET_EPOCH_SECONDS,
                    "meets_target": EPOCH_SAMPLES / rate < TARGET_EPOCH_SECONDS,
                    "cpu_samples_per_s": rows / float(np.median(cpu[mode])),
                    "peak_rss_mb": max((p for p in peak[mode] if p is not None), default=None),
                    "peak_rss_method": ("VmHWM, reset before each call" if resets
                                        else "ru_maxrss (process lifetime)"),
                    "statistic": "median", "repeats": repeats, "seconds": t,
                    "times_s": wall[mode], "load_average": load, "n_samples": rows,
                    "iterations": float(r.iters), "failures": int(r.failures),
                    "omega": systems[mode].omega, "tol": c.tol, "beta": c.beta,
                    "parallel_identical": same, "agrees": same and a.failures == 0,
                    **dict.fromkeys(_NO_REFERENCE),
                })
    return out


def run_benchmarks(quick: bool = False, repeats: int = 5, mnist: bool | None = None,
                   mnist_data: str | None = None) -> list[dict]:
    """EP samples/s of the engine (exact, gradient flow) against the numpy reference.

    Parameters
    ----------
    quick : bool   small batches, little training and at most 2 repeats (for a test)
    repeats : int   timed calls per implementation; the median is reported
    mnist : bool, optional   add the MNIST-scale cases of :func:`bench_mnist` (default:
        yes unless ``quick``)
    mnist_data : str, optional   MNIST folder or .npz for them (default: the shipped sample)

    Returns
    -------
    list of dict, one per case ``<task>/exact`` and ``<task>/gradient-flow`` for the tasks
    xor (4x4 lattice), iris (10x10 lattice) and digits (layered [64, 100, 10]); keys
    ``REQUIRED_KEYS`` and more (``seconds``, ``times_s``, ``max_phase_diff``, ...).
    ``ratio`` is ``samples_per_s / reference_samples_per_s``; ``agrees`` says the numba and
    numpy gradient flows reached the same phases (max wrapped difference < 1e-4). The MNIST
    cases follow (see :func:`bench_mnist`; their reference fields are None).
    """
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats: got {repeats!r}; allowed: an integer >= 1")
    if quick:
        repeats = min(repeats, 2)
    cases = []
    for name, config, epochs, n_exact, n_flow in _CASES[bool(quick)]:
        cases += bench_task(name, config, epochs, n_exact, n_flow, repeats)
    if mnist if mnist is not None else not quick:
        cases += bench_mnist(mnist_data, quick=quick, repeats=repeats)
    return cases


def _fmt(x, spec: str, width: int) -> str:
    """``x`` formatted, or "-" for a field a case does not have (None)."""
    return f"{'-' if x is None else format(x, spec):>{width}}"


def format_table(cases: list[dict]) -> str:
    """A plain-text table of :func:`run_benchmarks` results (MNIST rows: no reference)."""
    wide = max([22] + [len(c["name"]) + 2 for c in cases])
    head = (f"{'case':<{wide}}{'samples/s':>11}{'numpy/s':>10}{'ratio':>9}{'iters':>9}"
            f"{'np iters':>10}{'rows':>6}{'np rows':>8}  agrees")
    lines = [head, "-" * len(head)]
    for c in cases:
        ratio = c.get("ratio")
        lines.append(
            f"{c['name']:<{wide}}{c['samples_per_s']:>11.1f}"
            f"{_fmt(c.get('reference_samples_per_s'), '.2f', 10)}"
            f"{_fmt(ratio, '.1f', 8)}{'x' if ratio is not None else ' '}"
            f"{c['iterations']:>9.1f}{_fmt(c.get('reference_iterations'), '.1f', 10)}"
            f"{c['n_samples']:>6}{_fmt(c.get('n_reference_samples'), 'd', 8)}  {c['agrees']}")
    return "\n".join(lines)

