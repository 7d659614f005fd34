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
stopping rule). The numpy reference uses only elementwise operations, gathers and
``np.add.reduceat`` (no BLAS), so BLAS threading settings (``OPENBLAS_*``) do not touch it.
Everything runs on one core (the engine with ``parallel=False``).
"""

from __future__ import annotations

import math
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


class _FreeGather:
    """Neighbour lists of the free sites, laid out for one gather and one segmented sum.

    ``nbr`` (K,) neighbour of each slot, ``w`` (K,) its coupling, ``starts`` segment starts
    in ``nbr`` for the free sites ``nodes`` that have neighbours (``np.add.reduceat`` needs
    non-empty segments).
    """

    def __init__(self, net, w_edge):
        free = np.flatnonzero(net.free)
        ends = np.r_[net.src, net.dst]
        others = np.r_[net.dst, net.src]
        wa = np.r_[w_edge, w_edge].astype(np.float64)
        keep = net.free[ends]
        order = np.argsort(ends[keep], kind="stable")
        self.nbr = others[keep][order]
        self.w = wa[keep][order]
        deg = np.bincount(ends[keep], minlength=net.n_nodes)[free]
        self.nodes = free[deg > 0]
        self.starts = np.r_[0, np.cumsum(deg[deg > 0])[:-1]].astype(np.int64)
        self.free = free
        self.pos = np.searchsorted(free, self.nodes)

    def field(self, c, s, hx, hy):
        """Local field ``F_i = sum_j w_ij (c_j, s_j) + h_i (cos psi_i, sin psi_i)``.

        ``c``, ``s`` (A, N) cosines and sines of all phases. Returns fx, fy (A, F) on the
        free sites, in the order of ``self.free``.
        """
        fx = np.broadcast_to(hx[self.free], (c.shape[0], self.free.size)).copy()
        fy = np.broadcast_to(hy[self.free], (c.shape[0], self.free.size)).copy()
        if self.nodes.size:
            pos = self.pos
            fx[:, pos] += np.add.reduceat(c[:, self.nbr] * self.w, self.starts, axis=1)
            fy[:, pos] += np.add.reduceat(s[:, self.nbr] * self.w, self.starts, axis=1)
        return fx, fy


def numpy_gradient_flow(net, phi, w_edge, h, psi, targets=None, beta=0.0, *,
                        cost="log-cosine", tol=1e-6, max_iter=100000) -> Relaxation:
    """Relax ``E + beta C`` by explicit-Euler gradient flow, the whole batch at once.

    The same algorithm as the engine's ``solver="gradient-flow"`` (kernels.py
    ``_relax_flow_one``): each step evaluates the force ``f = -d(E + beta C)/dphi`` on the
    free sites, stops a row once ``max |f| < tol``, else moves ``phi += clip(dt f, +-0.1)``
    with ``dt`` from :func:`euler_dt`. Rows that converged leave the working set, so they
    cost nothing more. Vectorised over samples and adjacency slots (no BLAS).

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
    hx, hy = h * np.cos(psi), h * np.sin(psi)
    dt = euler_dt(net, w_edge, h, beta)
    g = _FreeGather(net, w_edge)
    free = g.free
    # positions of the outputs among the free columns (outputs are always free)
    opos = np.searchsorted(free, net.output_nodes)
    iters = np.full(S, max_iter, dtype=np.int64)
    resid = np.zeros(S)
    status = np.ones(S, dtype=np.int64)
    rows = np.arange(S)
    work = out.copy()
    tg = targets
    for it in range(1, max_iter + 1):
        c, s = np.cos(work), np.sin(work)
        fx, fy = g.field(c, s, hx, hy)
        f = fy * c[:, free] - fx * s[:, free]
        if beta != 0.0 and n_out:
            d = wrap(work[:, net.output_nodes] - tg)
            f[:, opos] += -beta * (np.tan(0.5 * d) if cost == "log-cosine" else np.sin(d))
        maxf = np.abs(f).max(axis=1) if f.shape[1] else np.zeros(work.shape[0])
        done = maxf < tol
        if done.any():
            out[rows[done]] = work[done]
            iters[rows[done]] = it
            resid[rows[done]] = maxf[done]
            status[rows[done]] = 0
            keep = ~done
            rows, work, tg, f, maxf = rows[keep], work[keep], tg[keep], f[keep], maxf[keep]
            if rows.size == 0:
                break
        work[:, free] += np.clip(dt * f, -STEP_CAP, STEP_CAP)
        if beta < 0.0 and n_out:
            gap = np.pi - np.abs(wrap(work[:, net.output_nodes] - tg))
            ran = (gap < RUNAWAY_GAP).any(axis=1)
            if ran.any():
                out[rows[ran]] = work[ran]
                iters[rows[ran]] = it
                resid[rows[ran]] = maxf[ran]
                status[rows[ran]] = 2
                keep = ~ran
                rows, work, tg, maxf = rows[keep], work[keep], tg[keep], maxf[keep]
                if rows.size == 0:
                    break
        if it == max_iter:  # the cap: like the kernel, the last step has been taken
            out[rows] = work
            resid[rows] = maxf
    return Relaxation(out, iters, resid, status)
