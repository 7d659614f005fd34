"""Slow, obviously-correct oracles written straight from docs/physics.md.

Nothing here imports ``xyprop.engine.kernels``: these are plain Python loops over edges
and sites, meant to be read next to the equations, not to be fast. Tests compare the
numba kernels against them on tiny networks.

Model (physics.md)::

    E(phi) = - sum_edges w_ij cos(phi_i - phi_j) - sum_{i non-input} h_i cos(phi_i - psi_i)
    C      = - sum_o log(1 + cos(phi_o - t_o))      ("log-cosine")
           =   sum_o (1 - cos(phi_o - t_o))          ("cosine")
    force on a free node i = -d(E + beta C)/dphi_i

Arrays: ``phi`` (S, N) or (N,) phases; ``src, dst`` (E,) edge endpoints; ``w`` (E,)
per-edge couplings; ``h, psi`` (N,) bias amplitude and direction; ``inputs`` and
``outputs`` node indices; ``targets`` (S, n_out) or (n_out,) target phases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Model:
    """Everything that defines ``E + beta C`` for one network (plain arrays).

    Attributes
    ----------
    n_nodes : int
    src, dst : int (E,)
    w : float (E,)   per-edge coupling
    h, psi : float (N,)   bias amplitude and direction (ignored on inputs)
    inputs, outputs : int arrays   clamped sites; output sites in class order
    """

    n_nodes: int
    src: np.ndarray
    dst: np.ndarray
    w: np.ndarray
    h: np.ndarray
    psi: np.ndarray
    inputs: np.ndarray
    outputs: np.ndarray

    @classmethod
    def from_net(cls, net, w_edge, h, psi) -> Model:
        """Read the graph of an engine ``Network`` (its plain arrays only)."""
        return cls(int(net.n_nodes), np.asarray(net.src), np.asarray(net.dst),
                   np.asarray(w_edge, float), np.asarray(h, float), np.asarray(psi, float),
                   np.asarray(net.input_nodes), np.asarray(net.output_nodes))

    def is_input(self, i: int) -> bool:
        return i in set(int(k) for k in self.inputs)

    def free_nodes(self) -> list[int]:
        ins = set(int(k) for k in self.inputs)
        return [i for i in range(self.n_nodes) if i not in ins]


# --------------------------------------------------------------------------------------
# energy, cost, forces
# --------------------------------------------------------------------------------------


def cost_one(phi, m: Model, targets, cost: str = "log-cosine") -> float:
    """C of one sample: phases ``phi`` (N,), ``targets`` (n_out,)."""
    c = 0.0
    for k, o in enumerate(m.outputs):
        d = phi[o] - targets[k]
        if cost == "log-cosine":
            c += -math.log(1.0 + math.cos(d))
        elif cost == "cosine":
            c += 1.0 - math.cos(d)
        else:
            raise ValueError(cost)
    return c


def energy_one(phi, m: Model, targets=None, beta=0.0, cost="log-cosine") -> float:
    """E(phi) + beta C(phi) of one sample, ``phi`` (N,)."""
    e = 0.0
    for k in range(len(m.src)):
        i, j = int(m.src[k]), int(m.dst[k])
        e -= m.w[k] * math.cos(phi[i] - phi[j])
    for i in m.free_nodes():
        e -= m.h[i] * math.cos(phi[i] - m.psi[i])
    if beta != 0.0:
        e += beta * cost_one(phi, m, targets, cost)
    return e


def energy(phi, m: Model, targets=None, beta=0.0, cost="log-cosine") -> np.ndarray:
    """E + beta C per sample, (S,)."""
    phi = np.atleast_2d(phi)
    out = []
    for s in range(phi.shape[0]):
        t = None if targets is None else np.atleast_2d(targets)[s]
        out.append(energy_one(phi[s], m, t, beta, cost))
    return np.array(out)


def forces_one(phi, m: Model, targets=None, beta=0.0, cost="log-cosine") -> np.ndarray:
    """-d(E + beta C)/dphi (N,) from the analytic formula; 0 on inputs.

    -dE/dphi_i = -sum_j w_ij sin(phi_i - phi_j) - h_i sin(phi_i - psi_i)
    -beta dC/dphi_o = -beta tan((phi_o - t_o) / 2)   (log-cosine)
                    = -beta sin(phi_o - t_o)         (cosine)
    """
    f = np.zeros(m.n_nodes)
    for k in range(len(m.src)):  # each edge pushes both of its ends
        i, j = int(m.src[k]), int(m.dst[k])
        f[i] -= m.w[k] * math.sin(phi[i] - phi[j])
        f[j] -= m.w[k] * math.sin(phi[j] - phi[i])
    for i in range(m.n_nodes):
        f[i] -= m.h[i] * math.sin(phi[i] - m.psi[i])
    if beta != 0.0:
        for k, o in enumerate(m.outputs):
            d = phi[o] - targets[k]
            if cost == "log-cosine":
                f[o] -= beta * math.tan(0.5 * d)
            else:
                f[o] -= beta * math.sin(d)
    for i in m.inputs:
        f[i] = 0.0
    return f


def forces(phi, m: Model, targets=None, beta=0.0, cost="log-cosine") -> np.ndarray:
    """-d(E + beta C)/dphi per sample, (S, N)."""
    phi = np.atleast_2d(phi)
    rows = []
    for s in range(phi.shape[0]):
        t = None if targets is None else np.atleast_2d(targets)[s]
        rows.append(forces_one(phi[s], m, t, beta, cost))
    return np.array(rows)


def max_force(phi, m: Model, targets=None, beta=0.0, cost="log-cosine") -> float:
    return float(np.abs(forces_one(phi, m, targets, beta, cost)).max())


# --------------------------------------------------------------------------------------
# relaxation
# --------------------------------------------------------------------------------------


def local_field(phi, m: Model, i: int) -> tuple[float, float]:
    """F_i = sum_j w_ij (cos phi_j, sin phi_j) + h_i (cos psi_i, sin psi_i)."""
    fx = m.h[i] * math.cos(m.psi[i])
    fy = m.h[i] * math.sin(m.psi[i])
    for k in range(len(m.src)):
        a, b = int(m.src[k]), int(m.dst[k])
        if a == i:
            fx += m.w[k] * math.cos(phi[b])
            fy += m.w[k] * math.sin(phi[b])
        elif b == i:
            fx += m.w[k] * math.cos(phi[a])
            fy += m.w[k] * math.sin(phi[a])
    return fx, fy


def _log_cosine_site_min(p0, fx, fy, t, b, step=1e-3):
    """Local minimum of g(p) = -(fx cos p + fy sin p) - b log(1 + cos(p - t)) reached by
    walking downhill from ``p0``: march until g' changes sign, then bisect.

    g'(p) = fx sin p - fy cos p + b tan((p - t) / 2).
    """
    def gp(d):
        p = t + d
        return fx * math.sin(p) - fy * math.cos(p) + b * math.tan(0.5 * d)

    d = (p0 - t + math.pi) % (2 * math.pi) - math.pi
    g0 = gp(d)
    if g0 == 0.0:
        return t + d
    direction = -1.0 if g0 > 0 else 1.0
    lo = d
    while True:
        hi = lo + direction * step
        if abs(hi) >= math.pi:  # fell into the anti-target (only possible for b < 0)
            raise FloatingPointError("run-away at the anti-target")
        if (gp(hi) > 0) != (g0 > 0):
            break
        lo = hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if (gp(mid) > 0) == (g0 > 0):
            lo = mid
        else:
            hi = mid
        if abs(hi - lo) < 1e-16:
            break
    return t + 0.5 * (lo + hi)


def coordinate_descent(phi0, m: Model, order, targets=None, beta=0.0, cost="log-cosine",
                       tol=1e-12, max_sweeps=100000):
    """Exact coordinate descent with omega = 1, one sample, in the given site ``order``.

    Each site in turn moves to the minimum of the energy over its own phase with all
    other phases held: ``phi_i = atan2(F_y, F_x)`` of the local field (the cosine cost
    adds ``beta (cos t, sin t)`` to an output's field; the log-cosine cost is minimised
    by a 1-D downhill search). Stops once max |force| over free sites (measured after a
    whole sweep) is below ``tol``.

    Returns
    -------
    phi : (N,)   phases;  sweeps : int;  converged : bool
    """
    phi = np.array(phi0, dtype=float)
    pos = {int(o): k for k, o in enumerate(m.outputs)}
    for sweep in range(1, max_sweeps + 1):
        for i in order:
            i = int(i)
            fx, fy = local_field(phi, m, i)
            if beta != 0.0 and i in pos and cost == "cosine":
                fx += beta * math.cos(targets[pos[i]])
                fy += beta * math.sin(targets[pos[i]])
            if beta != 0.0 and i in pos and cost == "log-cosine":
                phi[i] = _log_cosine_site_min(phi[i], fx, fy, targets[pos[i]], beta)
            elif fx != 0.0 or fy != 0.0:
                phi[i] = math.atan2(fy, fx)
        if max_force(phi, m, targets, beta, cost) < tol:
            return phi, sweep, True
    return phi, max_sweeps, False


def gradient_flow(phi0, m: Model, targets=None, beta=0.0, cost="log-cosine", dt=0.05,
                  tol=1e-10, max_steps=1_000_000):
    """Explicit Euler on d phi/dt = -d(E + beta C)/dphi, one sample; inputs fixed.

    Returns (phi (N,), steps, converged).
    """
    phi = np.array(phi0, dtype=float)
    for step in range(max_steps):
        f = forces_one(phi, m, targets, beta, cost)
        if np.abs(f).max() < tol:
            return phi, step, True
        phi = phi + dt * f
    return phi, max_steps, False


# --------------------------------------------------------------------------------------
# EP
# --------------------------------------------------------------------------------------


def dE_dw(phi, m: Model) -> np.ndarray:
    """dE/dw_ij = -cos(phi_i - phi_j) per edge, mean over samples, (E,)."""
    phi = np.atleast_2d(phi)
    g = np.zeros(len(m.src))
    for s in range(phi.shape[0]):
        for k in range(len(m.src)):
            g[k] -= math.cos(phi[s, m.src[k]] - phi[s, m.dst[k]]) / phi.shape[0]
    return g


def dE_dh_dpsi(phi, m: Model) -> tuple[np.ndarray, np.ndarray]:
    """dE/dh_i = -cos(phi_i - psi_i), dE/dpsi_i = -h_i sin(phi_i - psi_i); sample mean,
    zero on inputs. Returns two (N,) arrays."""
    phi = np.atleast_2d(phi)
    gh, gpsi = np.zeros(m.n_nodes), np.zeros(m.n_nodes)
    for s in range(phi.shape[0]):
        for i in m.free_nodes():
            gh[i] -= math.cos(phi[s, i] - m.psi[i]) / phi.shape[0]
            gpsi[i] -= m.h[i] * math.sin(phi[s, i] - m.psi[i]) / phi.shape[0]
    return gh, gpsi


def ep_edge_gradient(phi0, phib, m: Model, beta: float) -> np.ndarray:
    """One-sided EP estimate per edge: (1/beta) [dE/dw(phi_beta) - dE/dw(phi_0)], (E,)."""
    return (dE_dw(phib, m) - dE_dw(phi0, m)) / beta


# --------------------------------------------------------------------------------------
# closed-form edge counts (physics.md, "Architectures")
# --------------------------------------------------------------------------------------


def lattice_edge_count(rows: int, cols: int, neighbourhood: int = 4, skips: int = 0) -> int:
    """4-neighbour ``2RC - R - C``; 8-neighbour adds ``2(R-1)(C-1)``; plus skips."""
    n = 2 * rows * cols - rows - cols
    if neighbourhood == 8:
        n += 2 * (rows - 1) * (cols - 1)
    return n + skips


def all_to_all_edge_count(n_in: int, n_hidden: int, n_out: int) -> int:
    """Every pair of the F = hidden + out free nodes, plus every input to every free node."""
    f = n_hidden + n_out
    return f * (f - 1) // 2 + n_in * f


def layered_edge_count(sizes) -> int:
    """Consecutive layers fully bipartite: sum_k n_k n_{k+1}."""
    sizes = list(sizes)
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
