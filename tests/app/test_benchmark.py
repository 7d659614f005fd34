"""Tests for xyprop.app.benchmark: the numpy reference gradient flow and the benchmark run.

The numpy reference is checked against the engine's numba gradient flow (same algorithm,
so the same minimum from the same start) and against the slow oracle in tests/reference.py
(one Euler step, and a stationary point at the end). Timing numbers are not asserted
beyond being positive and finite: the machine may be shared.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference as ref

from xyprop.app.benchmark import (
    REQUIRED_KEYS,
    euler_dt,
    format_table,
    numpy_ep_gradient,
    numpy_gradient_flow,
    run_benchmarks,
)
from xyprop.engine import System, lattice, layered, wrap

TOL = 1e-6


def _params(net, rng, h_scale=0.3):
    """Ferro-like couplings with some negative ones, and nonzero bias fields."""
    w = rng.normal(1.0, 0.6, net.n_params)
    h = rng.uniform(0.0, h_scale, net.n_nodes) * net.free
    psi = rng.uniform(-np.pi, np.pi, net.n_nodes)
    return w, h, psi


def _problem(net, rng, S=6):
    w, h, psi = _params(net, rng)
    x = rng.choice([-math.pi / 2, math.pi / 2], size=(S, net.input_nodes.size))
    targets = rng.choice([-math.pi / 2, math.pi / 2], size=(S, net.output_nodes.size))
    sys_ = System(net, solver="gradient-flow", tol=TOL)
    phi = sys_.initial_phases(x, rng)
    return sys_, w, h, psi, x, targets, phi


@pytest.mark.parametrize("cost", ["log-cosine", "cosine"])
def test_reference_flow_reaches_the_engines_minimum(tiny_lattice, rng, cost):
    net = tiny_lattice
    sys_, w, h, psi, x, targets, phi = _problem(net, rng)
    sys_ = System(net, solver="gradient-flow", cost=cost, tol=TOL)
    w_edge = net.expand(w)
    eng_free = sys_.relax(phi, w_edge, h, psi)
    np_free = numpy_gradient_flow(net, phi, w_edge, h, psi, tol=TOL, cost=cost)
    eng_nud = sys_.relax(eng_free.phi, w_edge, h, psi, targets, 0.1)
    np_nud = numpy_gradient_flow(net, np_free.phi, w_edge, h, psi, targets, 0.1, tol=TOL,
                                 cost=cost)
    for a, b in ((eng_free, np_free), (eng_nud, np_nud)):
        assert (b.status == 0).all() and (a.status == 0).all()
        assert np.abs(wrap(a.phi - b.phi)).max() < 1e-6
        # same algorithm, same stopping rule: the same number of Euler steps
        np.testing.assert_array_equal(a.iters, b.iters)
        assert (b.residual < TOL).all()
    # independent check with the slow oracle: a stationary point of E (+ beta C)
    m = ref.Model.from_net(net, w_edge, h, psi)
    assert np.abs(ref.forces(np_free.phi, m)).max() < TOL
    assert np.abs(ref.forces(np_nud.phi, m, targets, 0.1, cost)).max() < TOL
    # the nudge moved something, so the comparison above was not trivial
    assert np.abs(wrap(np_nud.phi - np_free.phi)).max() > 1e-4
    # inputs stay clamped
    np.testing.assert_array_equal(np_free.phi[:, net.input_nodes], x)


def test_reference_euler_step_against_oracle(tiny_lattice, rng):
    """One step: phi + clip(dt f, +-0.1) with f from the analytic oracle, dt the engine rule."""
    net = tiny_lattice
    _, w, h, psi, _, targets, phi = _problem(net, rng)
    w_edge = net.expand(w)
    one = numpy_gradient_flow(net, phi, w_edge, h, psi, targets, 0.1, max_iter=1)
    m = ref.Model.from_net(net, w_edge, h * net.free, psi)
    f = ref.forces(phi, m, targets, 0.1)
    rows = np.zeros(net.n_nodes)
    for k in range(net.n_edges):
        rows[net.src[k]] += abs(w_edge[k])
        rows[net.dst[k]] += abs(w_edge[k])
    dt = 1.8 / (2 * rows.max() + np.abs(h * net.free).max() + 0.1)
    assert euler_dt(net, w_edge, h, 0.1) == pytest.approx(dt, rel=1e-14)
    np.testing.assert_allclose(one.phi, phi + np.clip(dt * f, -0.1, 0.1), atol=1e-13)
    assert (one.status == 1).all() and (one.iters == 1).all()


def test_reference_cap_and_runaway_match_engine(rng):
    net = lattice(3, 3, 2, 1)
    sys_, w, h, psi, _, targets, phi = _problem(net, rng)
    w_edge = net.expand(w)
    # the step cap: both stop after 7 steps, in the same state, reporting status 1
    capped = System(net, solver="gradient-flow", tol=TOL, max_iter=7)
    a = capped.relax(phi, w_edge, h, psi)
    b = numpy_gradient_flow(net, phi, w_edge, h, psi, tol=TOL, max_iter=7)
    np.testing.assert_array_equal(a.status, b.status)
    assert (b.status == 1).all()
    np.testing.assert_allclose(b.phi, a.phi, atol=1e-12)
    np.testing.assert_allclose(b.residual, a.residual, rtol=1e-9)
    # a strong negative nudge pulls outputs to their anti-target: run-away (status 2)
    free = sys_.relax(phi, w_edge, h, psi)
    out = net.output_nodes
    anti = free.phi[:, out] + math.pi - 0.3  # anti-target 0.3 rad away from each output
    a = sys_.relax(free.phi, w_edge, h, psi, anti, -5.0)
    b = numpy_gradient_flow(net, free.phi, w_edge, h, psi, anti, -5.0, tol=TOL)
    np.testing.assert_array_equal(a.status, b.status)
    assert (b.status == 2).any()
    np.testing.assert_array_equal(a.iters, b.iters)
    assert np.abs(wrap(a.phi - b.phi)).max() < 1e-9


def test_reference_ep_gradient_matches_engine(rng):
    net = layered([3, 5, 2])
    sys_, w, h, psi, x, targets, phi = _problem(net, rng, S=5)
    eng = sys_.ep_gradient(x, targets, w, h, psi, beta=0.1, rng=None, phi_start=phi)
    got = numpy_ep_gradient(net, phi, targets, w, h, psi, beta=0.1, tol=TOL)
    for key in ("grad_w", "grad_h", "grad_psi"):
        want = getattr(eng, key)
        assert np.abs(want).max() > 1e-3  # a real gradient, not zeros on both sides
        np.testing.assert_allclose(got[key], want, atol=1e-6)
    assert got["iters"] == pytest.approx(eng.iters)
    # independent: the edge gradient from the oracle at the reference's own equilibria
    m = ref.Model.from_net(net, net.expand(w), h, psi)
    g = ref.ep_edge_gradient(got["phi0"], got["phib"], m, 0.1)
    np.testing.assert_allclose(got["grad_w"], net.reduce(g), atol=1e-10)


def test_bad_arguments_raise_value_error(tiny_lattice):
    phi = np.zeros((1, tiny_lattice.n_nodes))
    with pytest.raises(ValueError, match="cost"):
        numpy_gradient_flow(tiny_lattice, phi, np.ones(tiny_lattice.n_edges),
                            np.zeros(9), np.zeros(9), cost="square")
    with pytest.raises(ValueError, match="repeats"):
        run_benchmarks(quick=True, repeats=0)


@pytest.fixture(scope="module")
def quick_cases():
    return run_benchmarks(quick=True, repeats=2)


def test_quick_benchmark_cases(quick_cases):
    names = [c["name"] for c in quick_cases]
    assert names == [f"{t}/{s}" for t in ("xor", "iris", "digits")
                     for s in ("exact", "gradient-flow")]
    for c in quick_cases:
        assert set(REQUIRED_KEYS) <= set(c)
        assert c["solver"] in ("exact", "gradient-flow")
        for key in ("samples_per_s", "reference_samples_per_s", "ratio", "iterations",
                    "reference_iterations"):
            assert math.isfinite(c[key]) and c[key] > 0, (c["name"], key, c[key])
        assert c["ratio"] == pytest.approx(c["samples_per_s"] / c["reference_samples_per_s"])
        assert c["n_samples"] >= 2 and c["n_reference_samples"] >= 2
        assert len(c["times_s"]) == c["repeats"] == 2
        # it ran and checked itself: numba and numpy gradient flows reached the same phases
        assert c["agrees"] is True and c["max_phase_diff"] < 1e-4
        assert c["grad_rel_diff"] < 1e-6
        assert c["failures"] == 0
    by = {c["name"]: c for c in quick_cases}
    for t in ("xor", "iris", "digits"):
        ex, gf = by[f"{t}/exact"], by[f"{t}/gradient-flow"]
        # both cases share one reference measurement; the solvers count iterations alike
        assert ex["reference_samples_per_s"] == gf["reference_samples_per_s"]
        assert gf["iterations"] == pytest.approx(gf["reference_iterations"])
        # the exact solver needs far fewer sweeps than gradient flow needs Euler steps
        assert ex["iterations"] < gf["iterations"]
    table = format_table(quick_cases)
    assert all(n in table for n in names)
