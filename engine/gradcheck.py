"""The exact loss gradient by implicit differentiation, and EP measured against it.

At a free minimum ``phi0(theta)`` the force vanishes, ``dE/dphi (phi0, theta) = 0``, so
differentiating that identity gives ``H dphi0/dtheta = -d2E/(dphi dtheta)`` with ``H`` the
Hessian of ``E`` over the free phases. For ``L = C(phi0)``::

    dL/dtheta = dC/dphi . dphi0/dtheta = -lambda . d2E/(dphi dtheta),   H lambda = dC/dphi

One linear solve per sample, exact to round-off (physics.md: agrees with finite differences
to ~1e-8), so it is the cheap reference that EP estimates are judged against.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import kernels as K
from .config import Config
from .ep import System, wrap
from .networks import Network

DEFAULT_BETAS = tuple(np.logspace(-4, -0.5, 8))
# Free phases for a gradient check are relaxed this tightly: the EP difference at
# beta = 1e-4 is ~1e-4 of the gradient, so a 1e-6 force error would swamp it.
GRADCHECK_TOL = 1e-10
# Samples with an output this close to its anti-target are left out of a check: there the
# log-cosine gradient diverges and, for either cost, the nudge must break an exact symmetry
# (a jump, not a small response), so EP and the exact gradient cannot be compared. The
# ferro start puts XOR's (+, +) pattern exactly there.
ANTI_TARGET_GAP = 1e-3


def hessian(system: System, phi: np.ndarray, w_edge: np.ndarray, h: np.ndarray,
            psi: np.ndarray) -> np.ndarray:
    """Hessian of ``E`` over all phases of one sample, (N, N).

    ``H_ii = sum_j w_ij cos(phi_i - phi_j) + h_i cos(phi_i - psi_i)``,
    ``H_ij = -w_ij cos(phi_i - phi_j)`` for an edge (i, j). Rows of clamped sites are
    included; callers restrict to the free block.
    """
    net = system.net
    n = net.n_nodes
    c = w_edge * np.cos(phi[net.src] - phi[net.dst])
    H = np.zeros((n, n))
    np.add.at(H, (net.src, net.dst), -c)
    np.add.at(H, (net.dst, net.src), -c)
    diag = np.zeros(n)
    np.add.at(diag, net.src, c)
    np.add.at(diag, net.dst, c)
    diag += h * system.free * np.cos(phi - psi)
    H[np.diag_indices(n)] += diag
    return H


def input_jacobian(system: System, phi: np.ndarray, w_edge: np.ndarray, h: np.ndarray,
                   psi: np.ndarray) -> np.ndarray:
    """``d phi / d x`` (N, n_in) at the free equilibrium ``phi`` (N,) of one sample.

    At a minimum ``grad_f E(phi_f, x) = 0``, so ``d phi_f / d x = -H_ff^-1 H_fx`` with the
    Hessian blocks of E over free sites f and input phases x; clamped rows are the
    identity. Raises ``numpy.linalg.LinAlgError`` for a singular H_ff (a soft mode).
    """
    net = system.net
    free = np.flatnonzero(system.free)
    inp = net.input_nodes
    H = hessian(system, phi, w_edge, h, psi)
    J = np.zeros((net.n_nodes, inp.size))
    J[free] = -np.linalg.solve(H[np.ix_(free, free)], H[np.ix_(free, inp)])
    J[inp, np.arange(inp.size)] = 1.0
    return J


def input_susceptibility(system: System, phi0: np.ndarray, w: np.ndarray, h: np.ndarray,
                         psi: np.ndarray, max_samples: int = 16) -> np.ndarray:
    """How strongly each site follows the inputs at the free equilibrium, (N,).

    The norm over inputs of ``d phi_i / d x_k`` (``input_jacobian``; 1 on inputs),
    averaged over at most ``max_samples`` rows of ``phi0`` (S, N). Samples whose Hessian
    is singular are skipped; NaN everywhere if all are.
    """
    w_edge = system.net.expand(w)
    maps = []
    for phi in np.asarray(phi0)[:max_samples]:
        try:
            J = input_jacobian(system, phi, w_edge, h, psi)
        except np.linalg.LinAlgError:
            continue
        maps.append(np.sqrt((J**2).sum(axis=1)))
    return np.mean(maps, axis=0) if maps else np.full(system.net.n_nodes, np.nan)


def cost_gradient(system: System, phi: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """dC/dphi (S, N) at phases ``phi`` (S, N); nonzero only on outputs.

    Log-cosine: ``tan((phi_o - t_o) / 2)``; cosine: ``sin(phi_o - t_o)``.
    """
    phi = np.atleast_2d(phi)
    d = phi[:, system.outputs] - np.asarray(targets, dtype=np.float64)
    g = np.zeros_like(phi)
    g[:, system.outputs] = np.tan(0.5 * d) if system.cost == K.COST_LOG_COSINE else np.sin(d)
    return g


def true_gradient(system: System, phi0: np.ndarray, targets: np.ndarray, w: np.ndarray,
                  h: np.ndarray, psi: np.ndarray, *, per_edge: bool = False):
    """Exact gradient of ``L = mean_s C(phi0_s)`` by implicit differentiation.

    Parameters
    ----------
    system : System   supplies the network and the cost
    phi0 : (S, N)   free equilibria (minima of E with the inputs clamped)
    targets : (S, n_out)   target phases
    w : (n_params,)   couplings;  h, psi : (N,) bias fields
    per_edge : bool   return the coupling gradient per edge (E,) instead of per parameter

    Returns
    -------
    gw : (n_params,) or (E,);  gh : (N,);  gpsi : (N,)   (zero on inputs)

    Raises
    ------
    ValueError   if the free-phase Hessian of a sample is not positive definite, i.e.
        ``phi0`` is not a (strict) minimum and the gradient is not defined by it.
    """
    net: Network = system.net
    phi0 = np.atleast_2d(np.asarray(phi0, dtype=np.float64))
    targets = np.atleast_2d(np.asarray(targets, dtype=np.float64))
    w_edge = net.expand(w)
    h = np.asarray(h, dtype=np.float64) * system.free
    psi = np.asarray(psi, dtype=np.float64)
    free = np.flatnonzero(system.free)
    dC = cost_gradient(system, phi0, targets)
    S = phi0.shape[0]
    gw = np.zeros(net.n_edges)
    gh = np.zeros(net.n_nodes)
    gpsi = np.zeros(net.n_nodes)
    for s in range(S):
        phi = phi0[s]
        Hf = hessian(system, phi, w_edge, h, psi)[np.ix_(free, free)]
        try:
            chol = np.linalg.cholesky(Hf)
        except np.linalg.LinAlgError:
            lo = float(np.linalg.eigvalsh(Hf).min())
            raise ValueError(f"gradcheck: sample {s}: the free-phase Hessian is not positive "
                             f"definite (smallest eigenvalue {lo:.3g}); phi0 is not a strict "
                             "minimum of E") from None
        lam = np.zeros(net.n_nodes)
        lam[free] = np.linalg.solve(chol.T, np.linalg.solve(chol, dC[s, free]))
        sab = np.sin(phi[net.src] - phi[net.dst])
        # d2E/(dphi dw_ab) is +sin on a, -sin on b: contract with lambda.
        gw -= (lam[net.src] - lam[net.dst]) * sab
        d = phi - psi
        gh -= lam * np.sin(d)
        gpsi += lam * h * np.cos(d)
    gw, gh, gpsi = gw / S, gh / S * system.free, gpsi / S * system.free
    return (gw if per_edge else net.reduce(gw)), gh, gpsi


def unshared(net: Network) -> Network:
    """The same graph with one trainable coupling per edge (no weight sharing)."""
    return dataclasses.replace(net, param_index=np.arange(net.n_edges, dtype=np.int64),
                               n_params=net.n_edges)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors (0 if either is zero)."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


def relative_error(est: np.ndarray, ref: np.ndarray) -> float:
    """``||est - ref|| / ||ref||`` (inf when the reference vanishes)."""
    nr = np.linalg.norm(ref)
    return float(np.linalg.norm(est - ref) / nr) if nr > 0 else float("inf")


def gradcheck(config: Config, n_samples: int = 4, betas=DEFAULT_BETAS, seed: int = 0) -> dict:
    """Compare one-sided and centered EP with the exact gradient at the initial network.

    The network is the one ``Trainer(config)`` starts from (same seeded initialisation).
    ``n_samples`` training samples (a seeded choice; all of them if fewer) are relaxed to
    free minima at force tolerance ``GRADCHECK_TOL``; every beta nudges from these same
    minima, so only beta changes between estimates.

    Returns
    -------
    dict with network arrays ``src, dst`` (E,), ``coupling`` (E,), ``h, psi`` (N,),
    ``input_nodes, output_nodes``, ``coords`` (N, 2); samples ``inputs`` (S, n_in),
    ``targets`` (S, n_out), ``free_phases`` (S, N); ``betas`` (B,);
    ``ep_grad_one_sided, ep_grad_centered`` (B, E) and ``true_grad`` (E,) per-edge coupling
    gradients; ``cosine_one_sided, cosine_centered, rel_error_one_sided,
    rel_error_centered`` (B,) of the coupling gradient and the same four with ``_full_``
    (``cosine_full_centered`` ...) over all parameters (per-edge w, h, psi), since the
    coupling gradient alone can vanish by symmetry; ``runaways_centered`` (B,) int;
    ``true_grad_h, true_grad_psi`` (N,); ``loss`` float; ``free_failures`` int;
    ``sample_index`` (S,) training rows used; ``excluded_samples`` int, chosen samples left
    out because an output sat at its anti-target (see ``ANTI_TARGET_GAP``).
    """
    from .train import Trainer  # train imports ep; keep this module importable on its own

    betas = np.asarray(betas, dtype=np.float64).ravel()
    if betas.size == 0 or not np.all(np.isfinite(betas)) or np.any(betas <= 0):
        raise ValueError(f"gradcheck: betas {betas.tolist()}; allowed: one or more finite "
                         "numbers > 0")
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) \
            or n_samples < 1:
        raise ValueError(f"gradcheck: samples {n_samples!r}; allowed: an integer >= 1")
    tr = Trainer(config)
    net, task = tr.net, tr.task
    w, h, psi = tr.w.copy(), tr.h.copy(), tr.psi.copy()
    w_edge = net.expand(w)
    kw = dict(cost=config.cost, solver=config.solver, tol=GRADCHECK_TOL,
              max_iter=config.max_iter, omega=config.omega)
    edge_sys = System(unshared(net), **kw)
    rng = np.random.default_rng(seed)
    n_train = task.x_train.shape[0]
    rows = np.sort(rng.choice(n_train, size=min(int(n_samples), n_train), replace=False))
    x = task.x_train[rows]
    tg = task.targets(task.y_train[rows])
    free = edge_sys.relax(edge_sys.initial_phases(x, rng), w_edge, h, psi)
    gap = np.pi - np.abs(wrap(free.phi[:, net.output_nodes] - tg))
    keep = (gap > ANTI_TARGET_GAP).all(axis=1)
    if not keep.any():
        raise ValueError(f"gradcheck: every chosen sample ({rows.size}) has an output at its "
                         "anti-target, where the loss gradient diverges; try another seed, "
                         "init or task")
    rows, x, tg, phi0 = rows[keep], x[keep], tg[keep], free.phi[keep]
    true_w, true_h, true_psi = true_gradient(edge_sys, phi0, tg, w_edge, h, psi)
    B, E = betas.size, net.n_edges
    one, cen = np.zeros((B, E)), np.zeros((B, E))
    runaways = np.zeros(B, dtype=np.int64)
    N = net.n_nodes
    # every trainable parameter (per-edge w, h, psi): the coupling gradient alone can vanish
    # by symmetry (XOR with h = 0: patterns related by a global rotation by pi cancel)
    true_full = np.concatenate([true_w, true_h, true_psi])
    full_one, full_cen = np.zeros((B, E + 2 * N)), np.zeros((B, E + 2 * N))
    for k, beta in enumerate(betas):
        r1 = edge_sys.ep_gradient(x, tg, w_edge, h, psi, beta=float(beta), rng=rng,
                                  phi_start=phi0)
        r2 = edge_sys.ep_gradient(x, tg, w_edge, h, psi, beta=float(beta), rng=rng,
                                  nudging="centered", phi_start=phi0)
        one[k], cen[k], runaways[k] = r1.grad_w, r2.grad_w, r2.runaways
        full_one[k] = np.concatenate([r1.grad_w, r1.grad_h, r1.grad_psi])
        full_cen[k] = np.concatenate([r2.grad_w, r2.grad_h, r2.grad_psi])
    return {
        "src": net.src.copy(), "dst": net.dst.copy(), "coupling": w_edge,
        "h": h, "psi": psi, "input_nodes": net.input_nodes.copy(),
        "output_nodes": net.output_nodes.copy(), "coords": net.coords.copy(),
        "inputs": x.copy(), "targets": tg, "free_phases": phi0, "betas": betas,
        "ep_grad_one_sided": one, "ep_grad_centered": cen, "true_grad": true_w,
        "true_grad_h": true_h, "true_grad_psi": true_psi,
        "cosine_one_sided": np.array([cosine(g, true_w) for g in one]),
        "cosine_centered": np.array([cosine(g, true_w) for g in cen]),
        "rel_error_one_sided": np.array([relative_error(g, true_w) for g in one]),
        "rel_error_centered": np.array([relative_error(g, true_w) for g in cen]),
        "cosine_full_one_sided": np.array([cosine(g, true_full) for g in full_one]),
        "cosine_full_centered": np.array([cosine(g, true_full) for g in full_cen]),
        "rel_error_full_one_sided": np.array([relative_error(g, true_full) for g in full_one]),
        "rel_error_full_centered": np.array([relative_error(g, true_full) for g in full_cen]),
        "runaways_centered": runaways,
        "loss": float(edge_sys.cost_of(phi0, tg).mean()),
        "free_failures": int((free.status[keep] != K.CONVERGED).sum()),
        "sample_index": rows, "excluded_samples": int((~keep).sum()),
    }


__all__ = ["DEFAULT_BETAS", "GRADCHECK_TOL", "cosine", "cost_gradient", "gradcheck", "hessian",
           "relative_error", "true_gradient", "unshared"]
