"""Numba kernels: relaxation of the XY energy, forces, energy and EP edge gradients.

The only module that imports numba. Everything is pure: arrays and scalars in, arrays
out, float64, ``nogil=True`` so a training thread does not block a server.

Model (physics.md)::

    E(phi) = - sum_edges w_ij cos(phi_i - phi_j) - sum_i h_i cos(phi_i - psi_i) + beta C(phi_out)
    C      = - sum_o log(1 + cos(phi_o - t_o))      (cost 0, "log-cosine")
           =   sum_o (1 - cos(phi_o - t_o))          (cost 1, "cosine")

Graph layout used by every kernel (CSR over nodes):
``indptr`` (N+1,), ``nbr`` (2E,) neighbour of each adjacency slot, ``wa`` (2E,) coupling of
that slot. Phases are stored ``phi`` (S, N), one row per sample, so that a converged
sample simply stops costing anything.

Status codes per sample: 0 converged, 1 iteration cap reached, 2 run-away (an output
fell into the unbounded well of ``E - beta C`` at the anti-target, see physics.md).
"""

from __future__ import annotations

import math
import types

import numpy as np
from numba import njit, prange

CONVERGED, NOT_CONVERGED, RUNAWAY = 0, 1, 2
COST_LOG_COSINE, COST_COSINE = 0, 1
# An output within this distance of its anti-target is declared a run-away: the
# log-cosine well there is unbounded below for negative beta.
_RUNAWAY_GAP = 1e-3

_jit = dict(nogil=True, cache=True)


@njit(**_jit)
def _wrap(x):
    """Map an angle to [-pi, pi)."""
    return (x + math.pi) % (2.0 * math.pi) - math.pi


@njit(**_jit)
def _cost_force(d, beta, cost):
    """-beta dC/dphi at ``d = phi_o - t_o``."""
    if cost == COST_LOG_COSINE:
        return -beta * math.tan(0.5 * d)
    return -beta * math.sin(d)


@njit(**_jit)
def _output_1d_min(phi, t, fx, fy, beta, cost_sign):
    """Minimise g(phi) = -|F| cos(phi - theta) - b log(1 + cos(phi - t)) in one variable.

    ``b = beta`` may be negative (centered EP). A safeguarded Newton descent from the
    current phase: every accepted step lowers g, so coordinate descent stays monotone.
    Returns (new phase, run-away flag).
    """
    b = beta * cost_sign
    d = _wrap(phi - t)
    for _ in range(60):
        c, s = math.cos(phi), math.sin(phi)
        g1 = fy * c - fx * s  # this is -dg_field/dphi: the field force
        half = 0.5 * d
        ch = math.cos(half)
        grad = -g1 + b * math.tan(half)
        curv = (fx * c + fy * s) + b * 0.5 / (ch * ch)
        if abs(grad) < 1e-14 * (1.0 + abs(fx) + abs(fy) + abs(b)):
            break
        if curv > 0:
            step = -grad / curv
        else:
            step = -0.5 * math.copysign(1.0, grad)
        if step > 0.5:
            step = 0.5
        elif step < -0.5:
            step = -0.5
        g0 = -(fx * c + fy * s) - b * math.log1p(math.cos(d))
        for _h in range(50):
            dn = d + step
            if abs(dn) >= math.pi:
                step *= 0.5
                continue
            pn = t + dn
            gn = -(fx * math.cos(pn) + fy * math.sin(pn)) - b * math.log1p(math.cos(dn))
            # Near the minimum a Newton step lowers g by ~grad^2 / curv, far below the
            # round-off of g itself; comparing exactly then rejects it at random and the
            # sweep stalls above tolerances below ~1e-8. Accept changes within round-off.
            if gn <= g0 + 1e-15 * (1.0 + abs(g0) + abs(fx) + abs(fy)):
                break
            step *= 0.5
        else:
            break
        d = d + step
        phi = t + d
        if b < 0 and math.pi - abs(d) < _RUNAWAY_GAP:
            return phi, True
        if abs(step) < 1e-15:
            break
    return phi, False


@njit(**_jit)
def _sync_phases(phi, cs, sn, moved):
    """Write back the phase of every site whose unit vector moved."""
    for i in range(phi.shape[0]):
        if moved[i]:
            phi[i] = math.atan2(sn[i], cs[i])
            moved[i] = False


@njit(**_jit)
def _relax_exact_one(phi, indptr, nbr, wa, hx, hy, order, out_pos, tgt, beta, cost,
                     omega, tol, max_iter):
    """Coordinate descent with over-relaxation on one sample, in place.

    Each free site's unit vector ``s_i`` moves towards the closed-form minimum of E over
    its own phase, ``u = F_i / |F_i|``, to ``(1 - omega) s_i + omega u`` normalised. For
    0 < omega < 2 this strictly shrinks the angle to ``u`` (its component across ``u``
    shrinks by ``|1 - omega|``, the one along ``u`` grows), so every move lowers E and the
    energy never increases; omega = 1 is the exact local minimum. Working on unit vectors
    needs no trigonometry per update: phases are written back (atan2) only at the end,
    and only for sites that moved. Outputs nudged with the log-cosine cost get the exact
    1-D solve instead. Returns (sweeps, max |force| of the last sweep, status).
    """
    n = phi.shape[0]
    cs = np.empty(n)
    sn = np.empty(n)
    moved = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        cs[i] = math.cos(phi[i])
        sn[i] = math.sin(phi[i])
    nudged = beta != 0.0
    maxf = 0.0
    for it in range(1, max_iter + 1):
        maxf = 0.0
        for k in range(order.shape[0]):
            i = order[k]
            fx = hx[i]
            fy = hy[i]
            for a in range(indptr[i], indptr[i + 1]):
                j = nbr[a]
                fx += wa[a] * cs[j]
                fy += wa[a] * sn[j]
            o = out_pos[i]
            if nudged and o >= 0 and cost == COST_COSINE:
                # cosine cost = a field of strength beta along the target
                fx += beta * math.cos(tgt[o])
                fy += beta * math.sin(tgt[o])
            force = fy * cs[i] - fx * sn[i]
            if nudged and o >= 0 and cost == COST_LOG_COSINE:
                if moved[i]:
                    phi[i] = math.atan2(sn[i], cs[i])
                    moved[i] = False
                force += _cost_force(_wrap(phi[i] - tgt[o]), beta, cost)
                af = abs(force)
                if af > maxf:
                    maxf = af
                if af > 0.1 * tol:
                    new, ran = _output_1d_min(phi[i], tgt[o], fx, fy, beta, 1.0)
                    if ran:
                        phi[i] = new
                        _sync_phases(phi, cs, sn, moved)
                        return it, maxf, RUNAWAY
                    phi[i] = new
                    cs[i] = math.cos(new)
                    sn[i] = math.sin(new)
                continue
            af = abs(force)
            if af > maxf:
                maxf = af
            # moving less than 0.1 tol changes nothing measurable
            if af > 0.1 * tol:
                norm = math.sqrt(fx * fx + fy * fy)
                vx = (1.0 - omega) * cs[i] + omega * fx / norm
                vy = (1.0 - omega) * sn[i] + omega * fy / norm
                nv = math.sqrt(vx * vx + vy * vy)
                cs[i] = vx / nv
                sn[i] = vy / nv
                moved[i] = True
        if maxf < tol:
            _sync_phases(phi, cs, sn, moved)
            return it, maxf, CONVERGED
    _sync_phases(phi, cs, sn, moved)
    return max_iter, maxf, NOT_CONVERGED


@njit(**_jit)
def _forces_one(phi, indptr, nbr, wa, hx, hy, free, out_pos, tgt, beta, cost, f):
    """-dE/dphi for one sample into ``f`` (N,); zero on clamped sites."""
    n = phi.shape[0]
    for i in range(n):
        if not free[i]:
            f[i] = 0.0
            continue
        ci = math.cos(phi[i])
        si = math.sin(phi[i])
        fx = hx[i]
        fy = hy[i]
        for a in range(indptr[i], indptr[i + 1]):
            j = nbr[a]
            fx += wa[a] * math.cos(phi[j])
            fy += wa[a] * math.sin(phi[j])
        v = fy * ci - fx * si
        o = out_pos[i]
        if beta != 0.0 and o >= 0:
            v += _cost_force(_wrap(phi[i] - tgt[o]), beta, cost)
        f[i] = v


@njit(**_jit)
def _relax_flow_one(phi, indptr, nbr, wa, hx, hy, free, out_pos, tgt, beta, cost,
                    dt, tol, max_iter):
    """Gradient flow d phi / dt = -dE/dphi, explicit Euler, on one sample, in place.

    Steps are capped at 0.1 rad because the log-cosine force diverges near the
    anti-target. With negative beta and the log-cosine cost, a step that reaches or
    crosses an output's anti-target (where ``E - beta C`` is unbounded below) is a
    run-away: the state before that step is kept and status 2 returned, as the exact
    solver does. Returns (steps, max |force|, status).
    """
    n = phi.shape[0]
    f = np.empty(n)
    cs = np.empty(n)
    sn = np.empty(n)
    maxf = 0.0
    check_runaway = beta < 0.0 and cost == COST_LOG_COSINE
    for it in range(1, max_iter + 1):
        # one cos/sin per site per step (not per bond)
        for i in range(n):
            cs[i] = math.cos(phi[i])
            sn[i] = math.sin(phi[i])
        maxf = 0.0
        for i in range(n):
            if not free[i]:
                f[i] = 0.0
                continue
            fx = hx[i]
            fy = hy[i]
            for a in range(indptr[i], indptr[i + 1]):
                j = nbr[a]
                fx += wa[a] * cs[j]
                fy += wa[a] * sn[j]
            v = fy * cs[i] - fx * sn[i]
            o = out_pos[i]
            if beta != 0.0 and o >= 0:
                v += _cost_force(_wrap(phi[i] - tgt[o]), beta, cost)
            f[i] = v
            if abs(v) > maxf:
                maxf = abs(v)
        if maxf < tol:
            return it, maxf, CONVERGED
        if check_runaway:
            for i in range(n):
                o = out_pos[i]
                if o < 0:
                    continue
                step = min(max(dt * f[i], -0.1), 0.1)
                d = _wrap(phi[i] - tgt[o])
                # d in [-pi, pi); the anti-target sits at +-pi: reaching it or stepping
                # past it means the output fell into the unbounded well
                if abs(d + step) >= math.pi - _RUNAWAY_GAP:
                    return it, maxf, RUNAWAY
        for i in range(n):
            step = dt * f[i]
            if step > 0.1:
                step = 0.1
            elif step < -0.1:
                step = -0.1
            phi[i] += step
    return max_iter, maxf, NOT_CONVERGED


def _relax_batch_impl(phi, indptr, nbr, wa, hx, hy, order, free, out_pos, targets, beta,
                      cost, solver, omega, dt, tol, max_iter, iters, resid, status):
    """Relax every sample (row of ``phi`` (S, N)) in place.

    ``hx, hy`` (S, N) are each sample's fixed field: the bias plus the pull of the clamped
    inputs, computed once per relaxation (``input_field``) instead of once per sweep, so
    the CSR arrays need to hold only the couplings among free sites.
    """
    for s in prange(phi.shape[0]):
        if solver == 0:
            it, r, st = _relax_exact_one(phi[s], indptr, nbr, wa, hx[s], hy[s], order,
                                         out_pos, targets[s], beta, cost, omega, tol, max_iter)
        else:
            it, r, st = _relax_flow_one(phi[s], indptr, nbr, wa, hx[s], hy[s], free, out_pos,
                                        targets[s], beta, cost, dt, tol, max_iter)
        iters[s] = it
        resid[s] = r
        status[s] = st


def _named(func, name: str):
    """``func`` under another name. Numba names its on-disk cache after the function's
    qualified name and first line, so two ``njit`` variants of one function share a cache
    entry and the second silently loads the first's machine code (``parallel=True`` then
    ran serially). A distinct name gives each variant its own entry."""
    f = types.FunctionType(func.__code__, func.__globals__, name, func.__defaults__,
                           func.__closure__)
    f.__qualname__ = f.__name__ = name
    f.__doc__, f.__kwdefaults__ = func.__doc__, func.__kwdefaults__
    return f


relax_batch_serial = njit(nogil=True, cache=True)(_named(_relax_batch_impl,
                                                         "relax_batch_serial"))
relax_batch_parallel = njit(nogil=True, cache=True, parallel=True)(
    _named(_relax_batch_impl, "relax_batch_parallel"))


@njit(nogil=True, cache=True)
def forces_batch(phi, indptr, nbr, wa, hx, hy, free, out_pos, targets, beta, cost):
    """-dE/dphi (S, N) for every sample; zero on clamped sites. ``hx, hy`` (S, N)."""
    f = np.zeros_like(phi)
    for s in range(phi.shape[0]):
        _forces_one(phi[s], indptr, nbr, wa, hx[s], hy[s], free, out_pos, targets[s], beta,
                    cost, f[s])
    return f


@njit(nogil=True, cache=True)
def input_field(phi, hx, hy, node, src_node, w_in):
    """Fixed field on free sites per sample: bias + sum of couplings to clamped inputs.

    ``hx, hy`` (N,) bias field; ``node`` (K,) free endpoint, ``src_node`` (K,) input
    endpoint and ``w_in`` (K,) coupling of each input edge. Returns (S, N) x and y parts.
    """
    S, n = phi.shape
    fx = np.empty((S, n))
    fy = np.empty((S, n))
    cs = np.empty(n)
    sn = np.empty(n)
    for s in range(S):
        # one cos/sin per node, not per edge: an input pixel feeds window^2 sites
        for i in range(n):
            fx[s, i] = hx[i]
            fy[s, i] = hy[i]
            cs[i] = math.cos(phi[s, i])
            sn[i] = math.sin(phi[s, i])
        for k in range(node.shape[0]):
            fx[s, node[k]] += w_in[k] * cs[src_node[k]]
            fy[s, node[k]] += w_in[k] * sn[src_node[k]]
    return fx, fy


@njit(nogil=True, cache=True)
def energy_batch(phi, src, dst, w, h, psi, out_nodes, targets, beta, cost):
    """Total energy E + beta C per sample, (S,)."""
    S = phi.shape[0]
    e = np.zeros(S)
    for s in range(S):
        acc = 0.0
        for k in range(src.shape[0]):
            acc -= w[k] * math.cos(phi[s, src[k]] - phi[s, dst[k]])
        for i in range(h.shape[0]):
            acc -= h[i] * math.cos(phi[s, i] - psi[i])
        if beta != 0.0:
            acc += beta * cost_one(phi[s], out_nodes, targets[s], cost)
        e[s] = acc
    return e


@njit(**_jit)
def cost_one(phi, out_nodes, tgt, cost):
    """Cost C of one sample's phases ``phi`` (N,) against targets ``tgt`` (n_out,)."""
    c = 0.0
    for k in range(out_nodes.shape[0]):
        d = phi[out_nodes[k]] - tgt[k]
        if cost == COST_LOG_COSINE:
            c -= math.log1p(math.cos(d))
        else:
            c += 1.0 - math.cos(d)
    return c


@njit(nogil=True, cache=True)
def cost_batch(phi, out_nodes, targets, cost):
    """Cost per sample (S,)."""
    out = np.empty(phi.shape[0])
    for s in range(phi.shape[0]):
        out[s] = cost_one(phi[s], out_nodes, targets[s], cost)
    return out


@njit(nogil=True, cache=True)
def energy_param_grads(phi, src, dst, psi, h, weight):
    """Weighted sum over samples of dE/dtheta at phases ``phi`` (S, N).

    ``weight`` (S,) per-sample factors (1/S gives the sample mean). Returns ``gw`` (E,)
    of -cos(phi_i - phi_j) per edge, ``gh`` (N,) of -cos(phi_i - psi_i), ``gpsi`` (N,)
    of -h_i sin(phi_i - psi_i).
    """
    n = phi.shape[1]
    gw = np.zeros(src.shape[0])
    gh = np.zeros(n)
    gpsi = np.zeros(n)
    cs = np.empty(n)
    sn = np.empty(n)
    cpsi = np.cos(psi)
    spsi = np.sin(psi)
    for s in range(phi.shape[0]):
        a = weight[s]
        for i in range(n):
            cs[i] = math.cos(phi[s, i])
            sn[i] = math.sin(phi[s, i])
        # cos(x - y) = cos x cos y + sin x sin y: no trigonometry per edge
        for k in range(src.shape[0]):
            i, j = src[k], dst[k]
            gw[k] -= a * (cs[i] * cs[j] + sn[i] * sn[j])
        for i in range(n):
            gh[i] -= a * (cs[i] * cpsi[i] + sn[i] * spsi[i])
            gpsi[i] -= a * h[i] * (sn[i] * cpsi[i] - cs[i] * spsi[i])
    return gw, gh, gpsi
