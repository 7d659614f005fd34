"""Free, nudged and centered relaxations, and the equilibrium-propagation estimator.

``System`` binds a :class:`~xyprop.engine.networks.Network` to solver settings and turns
parameter vectors into kernel calls. EP (physics.md)::

    dL/dtheta ~ (1/beta) [dE/dtheta(phi_beta) - dE/dtheta(phi_0)]              one-sided
    dL/dtheta ~ (1/(2 beta)) [dE/dtheta(phi_+beta) - dE/dtheta(phi_-beta)]     centered
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import kernels as K
from .networks import Network

COSTS = {"log-cosine": K.COST_LOG_COSINE, "cosine": K.COST_COSINE}
SOLVERS = {"exact": 0, "gradient-flow": 1}


def auto_omega(depth: int) -> float:
    """Over-relaxation for the exact solver from the graph depth.

    The SOR optimum for a chain of ``2 depth`` sites (clamped at one end, free at the
    other), ``2 / (1 + sin(pi / (2 depth + 1)))``, capped at ``1.5 + 0.01 depth``: the
    cap is a fit to trained lattices, whose bias fields stiffen the problem (measured in
    bench/bench_omega.py: on Iris 10x10 and 16x16 it halves the sweeps of the chain
    rule; about 1.49 on a 4x4 lattice, 1.26 on layered digits, near 1 for all-to-all).
    """
    chain = 2.0 / (1.0 + math.sin(math.pi / (2 * depth + 1)))
    return min(chain, 1.5 + 0.01 * depth)


@dataclass
class Relaxation:
    """Result of relaxing a batch.

    Attributes
    ----------
    phi : ndarray (S, N)   phases at the end
    iters : ndarray int64 (S,)   sweeps (exact) or Euler steps (gradient flow)
    residual : ndarray (S,)   max |force| on free sites at the end
    status : ndarray int64 (S,)   0 converged, 1 iteration cap, 2 run-away
    """

    phi: np.ndarray
    iters: np.ndarray
    residual: np.ndarray
    status: np.ndarray


@dataclass
class EPResult:
    """One EP estimate over a batch (rows are samples x restarts).

    Attributes
    ----------
    grad_w : (n_params,)   coupling gradient, summed over edges sharing a parameter
    grad_h, grad_psi : (N,)   bias gradients (zero on inputs)
    phi0, phib : (S*M, N)   free and (+beta) nudged equilibria
    response : (N,)   mean |wrap(phi_beta - phi_0)| / beta per site
    loss : float   mean cost at the free equilibrium
    iters : float   mean relaxation sweeps per phase
    failures : int   relaxations that hit the iteration cap
    runaways : int   centered -beta phases that ran away (those rows fall back to one-sided)
    """

    grad_w: np.ndarray
    grad_h: np.ndarray
    grad_psi: np.ndarray
    phi0: np.ndarray
    phib: np.ndarray
    response: np.ndarray
    loss: float
    iters: float
    failures: int
    runaways: int


def wrap(x: np.ndarray) -> np.ndarray:
    """Angles to [-pi, pi)."""
    return (np.asarray(x) + np.pi) % (2 * np.pi) - np.pi


class System:
    """A network ready for the kernels, with fixed solver settings.

    Parameters
    ----------
    net : Network
    cost : {"log-cosine", "cosine"}
    solver : {"exact", "gradient-flow"}
    tol : float   force tolerance (max |dE/dphi| over free sites)
    max_iter : int   sweep / step cap per relaxation
    omega : float   over-relaxation for the exact solver; 0 picks ``auto_omega``
    parallel : bool   run samples in parallel threads (numba prange)
    """

    def __init__(self, net: Network, *, cost="log-cosine", solver="exact", tol=1e-6,
                 max_iter=100000, omega=0.0, parallel=False):
        self.net = net
        self.cost = COSTS[cost]
        self.solver = SOLVERS[solver]
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        self.omega = float(omega) if omega else auto_omega(net.depth)
        self.parallel = bool(parallel)
        self.indptr, self.nbr, self.slot_edge = net.adjacency()
        # The kernels sweep only couplings among free sites; couplings to clamped inputs
        # enter once per relaxation as a fixed field (kernels.input_field).
        free = net.free
        keep = free[self.nbr]
        owner = np.repeat(np.arange(net.n_nodes), np.diff(self.indptr))
        self.free_indptr = np.zeros_like(self.indptr)
        np.cumsum(np.bincount(owner[keep], minlength=net.n_nodes), out=self.free_indptr[1:])
        self.free_nbr = self.nbr[keep]
        self.free_slot_edge = self.slot_edge[keep]
        to_input = free[owner] & ~keep
        self.in_node, self.in_src = owner[to_input], self.nbr[to_input]
        self.in_edge = self.slot_edge[to_input]
        self.order = net.update_order()
        self.free = net.free
        self.out_pos = net.out_pos
        self.outputs = net.output_nodes
        self.inputs = net.input_nodes

    def initial_phases(self, x: np.ndarray, rng: np.random.Generator, m_init=1) -> np.ndarray:
        """Inputs clamped to ``x`` (S, n_in); free sites uniform in [-pi, pi).

        Returns (S * m_init, N), restarts of one sample adjacent.
        """
        x = np.repeat(np.asarray(x, dtype=np.float64), m_init, axis=0)
        phi = rng.uniform(-np.pi, np.pi, size=(x.shape[0], self.net.n_nodes))
        phi[:, self.inputs] = x
        return phi

    def fixed_field(self, phi, w_edge, h, psi) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample field on free sites from the bias and the clamped inputs, 2 x (S, N).

        Depends only on the inputs in ``phi`` (S, N), so the free and nudged phases of one
        batch share it.
        """
        h = np.asarray(h, dtype=np.float64) * self.free
        return K.input_field(np.ascontiguousarray(phi, dtype=np.float64), h * np.cos(psi),
                             h * np.sin(psi), self.in_node, self.in_src,
                             np.ascontiguousarray(np.asarray(w_edge)[self.in_edge],
                                                  dtype=np.float64))

    def relax(self, phi, w_edge, h, psi, targets=None, beta=0.0, field=None) -> Relaxation:
        """Relax ``E + beta C`` from ``phi`` (S, N); ``phi`` is not modified.

        ``w_edge`` (E,) per-edge couplings; ``h``, ``psi`` (N,); ``targets`` (S, n_out);
        ``field``: ``fixed_field`` of these inputs and parameters, if already computed.
        """
        phi = np.array(phi, dtype=np.float64, order="C")
        S = phi.shape[0]
        if targets is None:
            targets = np.zeros((S, self.outputs.size))
        targets = np.ascontiguousarray(targets, dtype=np.float64)
        w_edge = np.asarray(w_edge, dtype=np.float64)
        wa = np.ascontiguousarray(w_edge[self.free_slot_edge])
        hx, hy = field if field is not None else self.fixed_field(phi, w_edge, h, psi)
        dt = 0.0  # the exact solver has no step size
        if self.solver != 0:
            # Euler is stable for dt < 2 / lambda_max; Gershgorin bounds lambda_max by this.
            aw = np.abs(w_edge)
            rows = (np.bincount(self.net.src, aw, self.net.n_nodes)
                    + np.bincount(self.net.dst, aw, self.net.n_nodes))
            h_max = np.abs(np.asarray(h, dtype=np.float64) * self.free).max()
            dt = 1.8 / max(2 * rows.max() + h_max + abs(beta), 1e-12)
        iters = np.zeros(S, dtype=np.int64)
        resid = np.zeros(S)
        status = np.zeros(S, dtype=np.int64)
        fn = K.relax_batch_parallel if self.parallel else K.relax_batch_serial
        fn(phi, self.free_indptr, self.free_nbr, wa, hx, hy, self.order, self.free,
           self.out_pos, targets, float(beta), self.cost, self.solver, self.omega, dt, self.tol,
           self.max_iter, iters, resid, status)
        return Relaxation(phi, iters, resid, status)

    def forces(self, phi, w_edge, h, psi, targets=None, beta=0.0) -> np.ndarray:
        """-d(E + beta C)/dphi (S, N); zero on inputs."""
        phi = np.ascontiguousarray(phi, dtype=np.float64)
        if targets is None:
            targets = np.zeros((phi.shape[0], self.outputs.size))
        h = np.asarray(h, dtype=np.float64) * self.free
        S = phi.shape[0]
        hx = np.tile(h * np.cos(psi), (S, 1))
        hy = np.tile(h * np.sin(psi), (S, 1))
        return K.forces_batch(phi, self.indptr, self.nbr, w_edge[self.slot_edge], hx, hy,
                              self.free, self.out_pos,
                              np.ascontiguousarray(targets, dtype=np.float64), float(beta),
                              self.cost)

    def energy(self, phi, w_edge, h, psi, targets=None, beta=0.0) -> np.ndarray:
        """E + beta C per sample (S,)."""
        phi = np.ascontiguousarray(phi, dtype=np.float64)
        if targets is None:
            targets = np.zeros((phi.shape[0], self.outputs.size))
        h = np.asarray(h, dtype=np.float64) * self.free
        return K.energy_batch(phi, self.net.src, self.net.dst, w_edge, h,
                              np.asarray(psi, dtype=np.float64), self.outputs,
                              np.ascontiguousarray(targets, dtype=np.float64), float(beta),
                              self.cost)

    def cost_of(self, phi, targets) -> np.ndarray:
        """Cost C per sample (S,) at phases ``phi`` (S, N)."""
        return K.cost_batch(np.ascontiguousarray(phi), self.outputs,
                            np.ascontiguousarray(targets, dtype=np.float64), self.cost)

    def param_grads(self, phi, h, psi, weight=None):
        """dE/dtheta at ``phi`` (S, N), summed over samples with ``weight`` (S,).

        Default weight 1/S (the sample mean). Returns per-edge w (E,), h (N,), psi (N,).
        """
        phi = np.ascontiguousarray(phi, dtype=np.float64)
        if weight is None:
            weight = np.full(phi.shape[0], 1.0 / phi.shape[0])
        return K.energy_param_grads(phi, self.net.src, self.net.dst,
                                    np.asarray(psi, dtype=np.float64),
                                    np.asarray(h, dtype=np.float64) * self.free,
                                    np.asarray(weight, dtype=np.float64))

    def ep_gradient(self, x, targets, w, h, psi, *, beta, nudging="one-sided",
                    rng: np.random.Generator, m_init=1, phi_start=None) -> EPResult:
        """EP estimate of dL/dtheta, L = mean over samples of C(phi_0).

        Parameters
        ----------
        x : (S, n_in) input phases;  targets : (S, n_out) target phases
        w : (n_params,) couplings;  h, psi : (N,) bias fields
        phi_start : optional (S * m_init, N) initial free-phase states (else random)
        """
        w_edge = self.net.expand(w)
        tg = np.repeat(np.asarray(targets, dtype=np.float64), m_init, axis=0)
        phi = phi_start if phi_start is not None else self.initial_phases(x, rng, m_init)
        field = self.fixed_field(phi, w_edge, h, psi)
        free = self.relax(phi, w_edge, h, psi, tg, 0.0, field)
        plus = self.relax(free.phi, w_edge, h, psi, tg, beta, field)
        n_rows = free.phi.shape[0]
        runaways = 0
        if nudging == "centered":
            minus = self.relax(free.phi, w_edge, h, psi, tg, -beta, field)
            bad = minus.status == K.RUNAWAY
            runaways = int(bad.sum())
            # A run-away row has no -beta equilibrium: it falls back to the one-sided
            # estimate (free phase instead of the minus phase, divisor beta not 2 beta).
            low = np.where(bad[:, None], free.phi, minus.phi)
            weight = np.where(bad, 1.0, 0.5) / (beta * n_rows)
            phases = (free, plus, minus)
            fails = int(sum((r.status == K.NOT_CONVERGED).sum() for r in phases))
        else:
            low = free.phi
            weight = np.full(n_rows, 1.0 / (beta * n_rows))
            phases = (free, plus)
            fails = int(sum((r.status == K.NOT_CONVERGED).sum() for r in phases))
        hi_w, hi_h, hi_psi = self.param_grads(plus.phi, h, psi, weight)
        lo_w, lo_h, lo_psi = self.param_grads(low, h, psi, weight)
        gw, gh, gpsi = hi_w - lo_w, hi_h - lo_h, hi_psi - lo_psi
        iters = float(np.mean([r.iters.mean() for r in phases]))
        response = np.abs(wrap(plus.phi - free.phi)).mean(0) / beta
        loss = float(self.cost_of(free.phi, tg).mean())
        return EPResult(self.net.reduce(gw), gh * self.free, gpsi * self.free, free.phi,
                        plus.phi, response, loss, float(iters), fails, runaways)
