"""Stacked lattices with local receptive fields (P26's MNIST networks).

Counts against closed forms and against a brute-force builder written from the docstring's
node layout; invalid window/stride combinations; the gradient of a shared parameter
against the per-edge EP gradients of the unshared network and against finite differences;
the precomputed input field against an edge-by-edge sum and the relaxation against the
slow oracle (full adjacency); a short training run on the shipped real MNIST sample.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference as ref

from xyprop.engine import Config, System, Trainer, build_network, mnist_sample_path, wrap
from xyprop.engine import kernels as K
from xyprop.engine.gradcheck import unshared
from xyprop.engine.networks import stacked

# ---------------------------------------------------------------------------------------
# closed forms and an independent builder
# ---------------------------------------------------------------------------------------


def closed_form(side, n_out, window, stride, channels=1, sheets=1, weight_sharing=False,
                intra=0, readout="dense", train_bias=True) -> dict:
    """Node, edge and parameter counts of a stacked network, written from the definitions.

    Sheet l has side ``s_l = (s_{l-1} - k) / stride + 1`` and C_l channels (C_0 = 1):
    ``C_{l-1} C_l s_l^2 k^2`` receptive-field couplings (``C_l C_{l-1} k^2`` parameters
    when shared), ``C_l (2 s^2 - 2 s)`` 4-neighbour bonds (8-neighbour adds
    ``C_l 2 (s - 1)^2``), readout ``C s^2 n_out`` (dense) or ``C s^2`` (local).
    """
    sides = [side]
    for _ in range(sheets):
        sides.append((sides[-1] - window) // stride + 1)
    chans = [1] + [channels] * sheets
    fwd = [chans[l - 1] * chans[l] * sides[l] ** 2 * window ** 2 for l in range(1, sheets + 1)]
    fwd_params = [chans[l - 1] * chans[l] * window ** 2 for l in range(1, sheets + 1)]
    bonds = 0
    for s in sides[1:]:
        if intra:
            bonds += channels * (2 * s * s - 2 * s)
        if intra == 8:
            bonds += channels * 2 * (s - 1) ** 2
    last = channels * sides[-1] ** 2
    read = last * (n_out if readout == "dense" else 1)
    n_nodes = side * side + sum(c * s * s for c, s in zip(chans[1:], sides[1:], strict=True))
    n_nodes += n_out
    n_params = (sum(fwd_params) if weight_sharing else sum(fwd)) + bonds + read
    return {"sides": sides, "n_nodes": n_nodes, "n_edges": sum(fwd) + bonds + read,
            "input_edges": fwd[0], "n_params": n_params,
            "n_parameters": n_params + (2 * (n_nodes - side * side) if train_bias else 0)}


def brute_force(side, n_out, window, stride, channels=1, sheets=1, weight_sharing=False,
                intra=0, readout="dense"):
    """Edges ``{(a, b): group}`` by plain loops over the documented layout.

    Node ``first + (c * side + r) * side + q`` is channel c, row r, column q of a sheet;
    sheets follow each other, the outputs come last. ``group`` names the trainable
    parameter: (sheet, c, c_prev, a, b) for a shared kernel entry, else the edge itself.
    """
    sides, firsts, chans = [side], [0], [1]
    for _ in range(sheets):
        firsts.append(firsts[-1] + chans[-1] * sides[-1] ** 2)
        sides.append((sides[-1] - window) // stride + 1)
        chans.append(channels)
    out0 = firsts[-1] + chans[-1] * sides[-1] ** 2

    def node(l, c, r, q):
        return firsts[l] + (c * sides[l] + r) * sides[l] + q

    edges = {}

    def add(a, b, group=None):
        key = (min(a, b), max(a, b))
        assert key not in edges, "duplicate edge"
        edges[key] = group if group is not None else key

    for l in range(1, sheets + 1):
        s = sides[l]
        for c in range(channels):
            for r in range(s):
                for q in range(s):
                    for cp in range(chans[l - 1]):
                        for a in range(window):
                            for b in range(window):
                                src = node(l - 1, cp, r * stride + a, q * stride + b)
                                add(src, node(l, c, r, q),
                                    (l, c, cp, a, b) if weight_sharing else None)
                    steps = [(0, 1), (1, 0)] + ([(1, 1), (1, -1)] if intra == 8 else [])
                    for dr, dq in steps if intra else []:
                        if r + dr < s and 0 <= q + dq < s:
                            add(node(l, c, r, q), node(l, c, r + dr, q + dq))
    s = sides[-1]
    for c in range(channels):
        for r in range(s):
            for q in range(s):
                if readout == "dense":
                    for o in range(n_out):
                        add(node(sheets, c, r, q), out0 + o)
                else:  # output o reads the o-th of n_out near-equal column strips
                    strips = np.array_split(np.arange(s), n_out)
                    o = next(k for k, cols in enumerate(strips) if q in cols)
                    add(node(sheets, c, r, q), out0 + o)
    return edges, out0 + n_out


def _partition(keys, groups):
    """Edges grouped by parameter, as a set of frozensets (labels do not matter)."""
    by = {}
    for k, g in zip(keys, groups, strict=True):
        by.setdefault(g, set()).add(k)
    return {frozenset(v) for v in by.values()}


MNIST_CASES = [  # (window, stride, channels, sheets, weight_sharing, intra, readout)
    (6, 1, 1, 1, False, 0, "dense"),
    (6, 1, 1, 1, False, 4, "dense"),
    (6, 1, 1, 1, False, 8, "local"),
    (6, 1, 3, 1, True, 4, "dense"),
    (5, 1, 2, 2, False, 0, "dense"),   # 28 -> 24 -> 20
    (6, 2, 2, 2, True, 8, "local"),    # 28 -> 12 -> 4
    (4, 3, 1, 1, False, 0, "dense"),   # 28 -> 9
    (4, 2, 4, 1, True, 0, "local"),    # 28 -> 13
]


def test_the_papers_network_counts():
    """Issue 4: 6x6 window, stride 1 on 28x28 -> 23x23, 19,044 input couplings, dense
    readout 5,290 (no weight sharing, no intra-sheet bonds)."""
    net = stacked(28, 10, window=6, stride=1)
    assert net.sheets == ((0, 1, 28), (784, 1, 23))
    n_input = int((net.src < 784).sum() + (net.dst < 784).sum())
    assert n_input == 19_044 == 23 * 23 * 36
    n_readout = int(np.isin(net.dst, net.output_nodes).sum()
                    + np.isin(net.src, net.output_nodes).sum())
    assert n_readout == 5_290
    assert net.n_edges == net.n_params == 19_044 + 5_290
    assert net.n_nodes == 784 + 529 + 10


@pytest.mark.parametrize("case", MNIST_CASES)
def test_counts_match_closed_forms(case):
    k, s, C, L, share, intra, readout = case
    want = closed_form(28, 10, k, s, C, L, share, intra, readout)
    net = stacked(28, 10, k, s, C, L, share, intra, readout)
    assert net.n_nodes == want["n_nodes"]
    assert net.n_edges == want["n_edges"]
    assert net.n_params == want["n_params"]
    assert [sd for _, _, sd in net.sheets] == want["sides"]
    assert [c for _, c, _ in net.sheets] == [1] + [C] * L
    assert int((~net.free[net.src] | ~net.free[net.dst]).sum()) == want["input_edges"]
    # the same network through a Config (what the CLI and the dashboard build)
    cfg = Config(task="mnist", arch="stacked", window=k, stride=s, channels=C, sheets=L,
                 weight_sharing=share, intra=intra, readout=readout)
    via = build_network(cfg, 784, 10)
    np.testing.assert_array_equal(via.src, net.src)
    np.testing.assert_array_equal(via.param_index, net.param_index)


SMALL_CASES = [  # (side, n_out, window, stride, channels, sheets, weight_sharing, intra, readout)
    (6, 3, 3, 1, 1, 1, False, 0, "dense"),
    (7, 3, 3, 2, 2, 1, True, 4, "local"),
    (8, 2, 3, 1, 2, 2, True, 8, "dense"),
    (9, 4, 3, 3, 1, 1, False, 8, "local"),
    (10, 3, 4, 2, 3, 2, False, 4, "local"),
    (12, 3, 5, 1, 2, 2, True, 0, "dense"),
]


@pytest.mark.parametrize("case", SMALL_CASES)
def test_edges_and_sharing_match_a_brute_force_builder(case):
    side, n_out, k, s, C, L, share, intra, readout = case
    net = stacked(side, n_out, k, s, C, L, share, intra, readout)
    edges, n_nodes = brute_force(side, n_out, k, s, C, L, share, intra, readout)
    keys = [(min(a, b), max(a, b)) for a, b in zip(net.src.tolist(), net.dst.tolist(),
                                                     strict=True)]
    assert len(set(keys)) == net.n_edges  # no duplicate couplings
    assert set(keys) == set(edges)
    assert net.n_nodes == n_nodes
    want = closed_form(side, n_out, k, s, C, L, share, intra, readout)
    assert net.n_edges == want["n_edges"] and net.n_params == want["n_params"]
    # the same edges read the same parameter: equal partitions of the edge set
    assert _partition(keys, net.param_index.tolist()) == _partition(keys, [edges[e] for e in keys])
    assert net.param_index.max() + 1 == net.n_params  # every parameter is used
    np.testing.assert_array_equal(net.input_nodes, np.arange(side * side))
    np.testing.assert_array_equal(net.output_nodes, n_nodes - n_out + np.arange(n_out))


@pytest.mark.parametrize("kw", [
    dict(window=29), dict(window=5, stride=2), dict(window=6, stride=4),
    dict(window=4, stride=2, sheets=2),   # 28 -> 13, then (13 - 4) is odd
    dict(window=6, stride=1, sheets=6),   # 28 -> 23 -> 18 -> 13 -> 8 -> 3 < 6
])
def test_invalid_window_and_stride_raise_value_error(kw):
    with pytest.raises(ValueError, match="'window'"):
        stacked(28, 10, **kw)
    with pytest.raises(ValueError, match="'window'"):
        build_network(Config(task="mnist", arch="stacked", **kw), 784, 10)


def test_stacked_needs_a_square_image_task():
    with pytest.raises(ValueError, match="'arch'"):
        build_network(Config(task="xor", arch="stacked"), 2, 1)
    net = build_network(Config(task="digits", arch="stacked", window=3), 64, 10)
    assert net.sheets[1] == (64, 1, 6)


# ---------------------------------------------------------------------------------------
# physics on a tiny stacked net
# ---------------------------------------------------------------------------------------


def _tiny(weight_sharing=True, intra=4):
    """6x6 inputs -> 2 channels 4x4 -> 2 channels 2x2 -> 3 outputs (window 3, stride 1)."""
    return stacked(6, 3, window=3, stride=1, channels=2, sheets=2,
                   weight_sharing=weight_sharing, intra=intra)


def _params(net, rng):
    w = rng.normal(0.6, 0.5, net.n_params)
    h = rng.uniform(0.05, 0.4, net.n_nodes) * net.free
    psi = rng.uniform(-np.pi, np.pi, net.n_nodes)
    return w, h, psi


def _data(net, rng, S):
    x = rng.uniform(-np.pi / 2, np.pi / 2, (S, net.input_nodes.size))
    targets = np.full((S, net.output_nodes.size), -np.pi / 2)
    targets[np.arange(S), rng.integers(0, net.output_nodes.size, S)] = np.pi / 2
    return x, targets


def test_input_field_equals_the_edge_by_edge_sum(rng):
    net = _tiny()
    w, h, psi = _params(net, rng)
    w_edge = net.expand(w)
    S = 3
    phi = rng.uniform(-np.pi, np.pi, (S, net.n_nodes))
    # plain sum over every edge with exactly one clamped end, plus the bias
    want_x = np.tile(h * np.cos(psi), (S, 1))
    want_y = np.tile(h * np.sin(psi), (S, 1))
    free = net.free
    n_cross = 0
    for a, b, we in zip(net.src.tolist(), net.dst.tolist(), w_edge.tolist(), strict=True):
        for i, j in ((a, b), (b, a)):
            if free[i] and not free[j]:
                want_x[:, i] += we * np.cos(phi[:, j])
                want_y[:, i] += we * np.sin(phi[:, j])
                n_cross += 1
    assert n_cross == closed_form(6, 3, 3, 1, 2, 2, True, 4)["input_edges"] == 2 * 16 * 9
    sys_ = System(net)
    hx, hy = K.input_field(phi, h * np.cos(psi), h * np.sin(psi), sys_.in_node, sys_.in_src,
                           np.ascontiguousarray(w_edge[sys_.in_edge]))
    np.testing.assert_allclose(hx, want_x, atol=1e-12)
    np.testing.assert_allclose(hy, want_y, atol=1e-12)
    assert np.abs(hx[:, free] - want_x[:, free] + h[free] * np.cos(psi[free])).max() > 0.1
    # the kernels sweep the rest: the rows of free sites hold every free-free coupling
    # twice and no coupling to an input
    rows = np.repeat(np.arange(net.n_nodes), np.diff(sys_.free_indptr))
    assert free[sys_.free_nbr].all()
    assert int(free[rows].sum()) == 2 * (net.n_edges - n_cross)
    # the kernel itself, fed edge lists built here (another order), gives the same field
    cross = free[net.src] != free[net.dst]
    node = np.where(free[net.src], net.src, net.dst)[cross][::-1].copy()
    src = np.where(free[net.src], net.dst, net.src)[cross][::-1].copy()
    gx, gy = K.input_field(phi, h * np.cos(psi), h * np.sin(psi), node, src,
                           w_edge[cross][::-1].copy())
    np.testing.assert_allclose(gx, want_x, atol=1e-12)
    np.testing.assert_allclose(gy, want_y, atol=1e-12)


@pytest.mark.parametrize("cost", ["log-cosine", "cosine"])
def test_relaxation_with_the_input_field_matches_the_full_adjacency_oracle(rng, cost):
    """Coordinate descent (omega = 1, same site order) in the engine, where the inputs enter
    as a precomputed field, and in the oracle, which sums every edge at every update, reach
    the same free and nudged minima; forces from the full adjacency vanish there."""
    net = _tiny()
    w, h, psi = _params(net, rng)
    w_edge = net.expand(w)
    x, targets = _data(net, rng, 2)
    tol = 1e-11
    sys_ = System(net, cost=cost, omega=1.0, tol=tol)
    phi = sys_.initial_phases(x, rng)
    free = sys_.relax(phi, w_edge, h, psi)
    nudged = sys_.relax(free.phi, w_edge, h, psi, targets, 0.5)
    m = ref.Model.from_net(net, w_edge, h, psi)
    order = net.update_order()
    for s in range(2):
        f_ref, _, ok = ref.coordinate_descent(phi[s], m, order, tol=tol)
        assert ok and free.status[s] == 0
        assert np.abs(wrap(free.phi[s] - f_ref)).max() < 1e-8
        n_ref, _, ok = ref.coordinate_descent(f_ref, m, order, targets[s], 0.5, cost, tol=tol)
        assert ok and nudged.status[s] == 0
        assert np.abs(wrap(nudged.phi[s] - n_ref)).max() < 1e-8
    # forces with every coupling in the adjacency (System.forces) and from the oracle
    assert np.abs(sys_.forces(free.phi, w_edge, h, psi)).max() < 10 * tol
    assert np.abs(ref.forces(nudged.phi, m, targets, 0.5, cost)).max() < 10 * tol
    assert np.abs(wrap(nudged.phi - free.phi)).max() > 1e-3  # the nudge did something
    np.testing.assert_array_equal(free.phi[:, net.input_nodes], x)


def test_parallel_relaxation_is_bit_identical_to_serial(rng):
    net = stacked(8, 3, window=3, stride=1, channels=2, intra=4)
    w, h, psi = _params(net, rng)
    x, targets = _data(net, rng, 7)
    phi = System(net).initial_phases(x, rng)
    a = System(net).ep_gradient(x, targets, w, h, psi, beta=0.1, rng=None, phi_start=phi)
    b = System(net, parallel=True).ep_gradient(x, targets, w, h, psi, beta=0.1, rng=None,
                                               phi_start=phi)
    np.testing.assert_array_equal(a.phi0, b.phi0)
    np.testing.assert_array_equal(a.phib, b.phib)
    np.testing.assert_array_equal(a.grad_w, b.grad_w)


def test_shared_gradient_is_the_sum_of_per_edge_ep_gradients(rng):
    net = _tiny(weight_sharing=True, intra=4)
    assert net.n_params < net.n_edges
    flat = unshared(net)
    w, h, psi = _params(net, rng)
    x, targets = _data(net, rng, 4)
    phi = System(net).initial_phases(x, rng)
    kw = dict(beta=0.1, rng=None, phi_start=phi)
    shared = System(net).ep_gradient(x, targets, w, h, psi, **kw)
    per_edge = System(flat).ep_gradient(x, targets, net.expand(w), h, psi, **kw)
    # same couplings, same starts: the same phases in both phases of EP
    np.testing.assert_array_equal(shared.phi0, per_edge.phi0)
    np.testing.assert_array_equal(shared.phib, per_edge.phib)
    assert per_edge.grad_w.shape == (net.n_edges,)
    # the per-edge EP gradient is the oracle's (1/beta)[dE/dw(phi_b) - dE/dw(phi_0)]
    m = ref.Model.from_net(net, net.expand(w), h, psi)
    np.testing.assert_allclose(per_edge.grad_w,
                               ref.ep_edge_gradient(per_edge.phi0, per_edge.phib, m, 0.1),
                               atol=1e-10)
    summed = np.zeros(net.n_params)
    for e, p in enumerate(net.param_index.tolist()):
        summed[p] += per_edge.grad_w[e]
    np.testing.assert_allclose(shared.grad_w, summed, rtol=1e-12, atol=1e-12)
    # summing matters: edges of one kernel entry get different per-edge gradients
    kernel = net.param_index[0]
    members = per_edge.grad_w[net.param_index == kernel]
    assert members.size == 16 and np.ptp(members) > 1e-3
    np.testing.assert_array_equal(shared.grad_h, per_edge.grad_h)


def test_shared_ep_gradient_matches_finite_differences_of_the_loss(rng):
    """dL/dw for a shared kernel entry: centered EP at small beta against central finite
    differences of L = mean C(phi_0), each side relaxed from the same free minimum."""
    net = _tiny(weight_sharing=True, intra=0)
    w, h, psi = _params(net, rng)
    x, targets = _data(net, rng, 2)
    tol = 1e-12
    sys_ = System(net, cost="cosine", tol=tol)
    free = sys_.relax(sys_.initial_phases(x, rng), net.expand(w), h, psi)
    assert (free.status == 0).all()
    ep = sys_.ep_gradient(x, targets, w, h, psi, beta=1e-4, nudging="centered", rng=None,
                          phi_start=free.phi)
    eps = 1e-5

    def loss(wk):
        r = sys_.relax(free.phi, net.expand(wk), h, psi)
        assert (r.status == 0).all()
        return sys_.cost_of(r.phi, targets).mean()

    # two first-sheet kernel entries, one second-sheet entry, one readout coupling
    for p in (0, 4, 2 * 9 + 2 * 9 + 5, net.n_params - 1):
        d = np.zeros(net.n_params)
        d[p] = eps
        fd = (loss(w + d) - loss(w - d)) / (2 * eps)
        assert abs(fd) > 1e-4, p
        assert ep.grad_w[p] == pytest.approx(fd, rel=1e-3, abs=1e-7), p


# ---------------------------------------------------------------------------------------
# training on real digits
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kw", [dict(), dict(intra=4), dict(weight_sharing=True, channels=4)])
def test_small_stacked_network_learns_the_shipped_mnist_sample(kw):
    """480 train / 120 test real digits, 28x28 -> 12x12 sheet(s) -> 10 outputs, 3 epochs:
    test accuracy far above chance (0.1). Measured 0.67-0.79 over seeds 0-3."""
    cfg = Config(task="mnist", arch="stacked", data_dir=str(mnist_sample_path()), window=6,
                 stride=2, batch_size=20, lr=0.05, epochs=3, seed=0, **kw)
    tr = Trainer(cfg)
    assert tr.task.x_train.shape == (480, 784) and tr.task.x_test.shape == (120, 784)
    start = tr.evaluate("test").accuracy
    tr.run()
    acc = [row["test_accuracy"] for row in tr.history]
    assert len(acc) == 3 and start < 0.2
    assert acc[-1] > 0.5, acc
    assert tr.history[-1]["failures"] == 0
    assert math.isfinite(tr.history[-1]["test_loss"])
