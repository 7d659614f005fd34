"""Architectures: edge counts against closed forms, graph sanity, roles, placements,
adjacency, sweep order, custom edge files."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import reference as ref

from xyprop.engine import (
    Config,
    all_to_all,
    build_network,
    lattice,
    layered,
    read_edge_file,
)


def _edge_set(net) -> set[tuple[int, int]]:
    return {(min(a, b), max(a, b)) for a, b in zip(net.src.tolist(), net.dst.tolist(), strict=True)}


def _assert_simple_graph(net):
    """No self loops, no duplicate (undirected) edges, indices in range."""
    assert net.src.shape == net.dst.shape == net.param_index.shape == (net.n_edges,)
    assert np.all(net.src != net.dst)
    assert len(_edge_set(net)) == net.n_edges
    assert net.src.min() >= 0 and max(net.src.max(), net.dst.max()) < net.n_nodes


# ---------------------------------------------------------------------------------------
# edge counts
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("nb", [4, 8])
@pytest.mark.parametrize("rows,cols", list(itertools.product(range(2, 8), range(2, 8))))
def test_lattice_edge_count_and_geometry(rows, cols, nb):
    net = lattice(rows, cols, min(2, cols), 1, neighbourhood=nb)
    assert net.n_edges == ref.lattice_edge_count(rows, cols, nb)
    _assert_simple_graph(net)
    assert net.n_nodes == rows * cols and net.shape == (rows, cols)
    r, c = np.divmod(np.arange(rows * cols), cols)
    np.testing.assert_array_equal(net.coords, np.stack([c, r], 1))
    # only nearest (and, for 8, diagonal) neighbours
    for a, b in zip(net.src, net.dst, strict=True):
        dr, dc = abs(r[a] - r[b]), abs(c[a] - c[b])
        assert (dr, dc) in ({(0, 1), (1, 0)} if nb == 4 else {(0, 1), (1, 0), (1, 1)})


SKIP_CASES = [(rows, cols, length) for rows in (5, 6, 8) for cols in (3, 4, 5)
              for length in (2, 3, 4) if length < rows]


@pytest.mark.parametrize("nb", [4, 8])
@pytest.mark.parametrize("rows,cols,length", SKIP_CASES)
def test_lattice_skips(rows, cols, length, nb):
    per_column = len(range(0, rows - length, length))
    base = _edge_set(lattice(rows, cols, 2, 1, neighbourhood=nb))
    for count in range(1, cols * per_column + 1):
        net = lattice(rows, cols, 2, 1, neighbourhood=nb, skip_length=length,
                      skip_count=count)
        assert net.n_edges == ref.lattice_edge_count(rows, cols, nb, skips=count)
        _assert_simple_graph(net)
        extra = _edge_set(net) - base
        assert len(extra) == count  # all distinct and none duplicates a lattice bond
        for a, b in extra:
            (ra, ca), (rb, cb) = divmod(a, cols), divmod(b, cols)
            assert ca == cb and abs(ra - rb) == length
    with pytest.raises(ValueError, match="skip_count"):
        lattice(rows, cols, 2, 1, skip_length=length, skip_count=cols * per_column + 1)


@pytest.mark.parametrize("length", [0, 1])
def test_skip_length_below_two_is_rejected(length):
    with pytest.raises(ValueError, match="skip_length"):
        lattice(5, 4, 2, 1, skip_length=length, skip_count=2)


def test_skip_longer_than_lattice_is_rejected():
    with pytest.raises(ValueError, match="skip"):
        lattice(4, 4, 2, 1, skip_length=4, skip_count=1)


@pytest.mark.parametrize("n_in,n_hidden,n_out",
                         list(itertools.product([1, 2, 4], [0, 1, 5, 10], [1, 3])))
def test_all_to_all_edges(n_in, n_hidden, n_out):
    net = all_to_all(n_in, n_hidden, n_out)
    assert net.n_edges == ref.all_to_all_edge_count(n_in, n_hidden, n_out)
    _assert_simple_graph(net)
    ins = set(net.input_nodes.tolist())
    free = [i for i in range(net.n_nodes) if i not in ins]
    want = {(min(a, b), max(a, b)) for a, b in itertools.combinations(free, 2)}
    want |= {(min(a, b), max(a, b)) for a in ins for b in free}
    assert _edge_set(net) == want  # every free pair, every input-free pair, no input pair
    assert net.input_nodes.size == n_in and net.output_nodes.size == n_out
    assert not ins & set(net.output_nodes.tolist())


@pytest.mark.parametrize("sizes", [[2, 1], [2, 3, 1], [4, 10, 3], [3, 4, 5, 2], [64, 20, 10],
                                   [1, 1, 1, 1, 1]])
def test_layered_edges(sizes):
    net = layered(sizes)
    assert net.n_edges == ref.layered_edge_count(sizes)
    _assert_simple_graph(net)
    np.testing.assert_array_equal(np.bincount(net.layer), sizes)
    # only consecutive layers, and all of each bipartite block
    assert np.all(np.abs(net.layer[net.src] - net.layer[net.dst]) == 1)
    np.testing.assert_array_equal(net.input_nodes, np.flatnonzero(net.layer == 0))
    np.testing.assert_array_equal(net.output_nodes,
                                  np.flatnonzero(net.layer == len(sizes) - 1))


# ---------------------------------------------------------------------------------------
# roles and placement
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("rows,cols,n_in,n_out", [(2, 2, 2, 1), (3, 5, 2, 3), (6, 6, 4, 3),
                                                  (4, 9, 9, 1), (5, 7, 3, 7)])
def test_lattice_inputs_first_row_outputs_last_row(rows, cols, n_in, n_out):
    net = lattice(rows, cols, n_in, n_out)
    assert np.all(net.coords[net.input_nodes, 1] == 0)
    assert np.all(net.coords[net.output_nodes, 1] == rows - 1)
    assert len(set(net.input_nodes.tolist())) == n_in
    assert len(set(net.output_nodes.tolist())) == n_out
    np.testing.assert_array_equal(net.free, ~np.isin(np.arange(rows * cols), net.input_nodes))


PLACEMENT_CASES = [(cols, n) for cols in range(1, 12) for n in range(1, cols + 1)]


@pytest.mark.parametrize("cols,n", PLACEMENT_CASES)
def test_placements(cols, n):
    def columns(placement):
        net = lattice(3, cols, n, n, input_placement=placement, output_placement=placement)
        c_in = net.coords[net.input_nodes, 0].astype(int)
        c_out = net.coords[net.output_nodes, 0].astype(int)
        np.testing.assert_array_equal(c_in, c_out)
        return c_in

    start, centre, spread = columns("start"), columns("centre"), columns("spread")
    np.testing.assert_array_equal(start, np.arange(n))
    # centre: one contiguous block, margins equal to within one site
    np.testing.assert_array_equal(np.diff(centre), np.ones(n - 1))
    assert abs(centre[0] - (cols - 1 - centre[-1])) <= 1
    # spread: increasing, gaps within one site of each other, margins balanced
    assert np.all(np.diff(spread) >= 1)
    if n > 1:
        assert np.ptp(np.diff(spread)) <= 1
    assert abs(spread[0] - (cols - 1 - spread[-1])) <= 1
    assert 0 <= spread.min() and spread.max() < cols


def test_placement_examples():
    net = lattice(3, 7, 3, 3, input_placement="spread", output_placement="centre")
    np.testing.assert_array_equal(net.input_nodes, [1, 3, 5])
    np.testing.assert_array_equal(net.output_nodes, 14 + np.array([2, 3, 4]))


@pytest.mark.parametrize("n_in,n_out", [(4, 1), (1, 4)])
def test_too_many_terminals_for_cols(n_in, n_out):
    with pytest.raises(ValueError, match="'cols'") as e:
        lattice(4, 3, n_in, n_out)
    assert "3" in str(e.value) and "4" in str(e.value)


def test_too_many_inputs_via_config():
    with pytest.raises(ValueError, match="'cols'"):
        build_network(Config(arch="lattice", rows=4, cols=3), 4, 3)  # iris: 4 inputs


def test_single_row_lattice_rejected():
    with pytest.raises(ValueError, match="'rows'"):
        lattice(1, 5, 2, 1)


# ---------------------------------------------------------------------------------------
# adjacency and sweep order
# ---------------------------------------------------------------------------------------


NETS = {
    "lattice4": lambda: lattice(4, 5, 2, 2),
    "lattice8-skips": lambda: lattice(6, 4, 2, 1, neighbourhood=8, skip_length=2,
                                      skip_count=5),
    "all-to-all": lambda: all_to_all(3, 4, 2),
    "layered": lambda: layered([3, 4, 2]),
}


@pytest.mark.parametrize("name", NETS)
def test_adjacency_matches_edges(name):
    net = NETS[name]()
    indptr, nbr, edge = net.adjacency()
    assert indptr.shape == (net.n_nodes + 1,) and indptr[0] == 0
    assert indptr[-1] == nbr.size == edge.size == 2 * net.n_edges
    for i in range(net.n_nodes):
        got = sorted(zip(nbr[indptr[i]:indptr[i + 1]].tolist(),
                         edge[indptr[i]:indptr[i + 1]].tolist(), strict=True))
        pairs = list(enumerate(zip(net.src.tolist(), net.dst.tolist(), strict=True)))
        want = sorted([(b, k) for k, (a, b) in pairs if a == i]
                      + [(a, k) for k, (a, b) in pairs if b == i])
        assert got == want


@pytest.mark.parametrize("name", NETS)
def test_update_order_covers_free_nodes(name):
    net = NETS[name]()
    order = net.update_order()
    np.testing.assert_array_equal(np.sort(order), np.flatnonzero(net.free))
    if net.kind != "lattice":
        np.testing.assert_array_equal(order, np.flatnonzero(net.free))


@pytest.mark.parametrize("rows,cols", [(3, 3), (4, 5), (6, 6), (5, 2)])
def test_update_order_red_then_black(rows, cols):
    net = lattice(rows, cols, 2, 1)
    order = net.update_order()
    colour = np.sum(np.divmod(order, cols), axis=0) % 2
    assert np.all(np.diff(colour) >= 0)  # all red (even) before all black (odd)
    assert colour[0] == 0 and colour[-1] == 1
    # the point of red/black: no bond joins two sites of one colour (4-neighbour)
    both = np.sum(np.divmod(net.src, cols), axis=0) % 2 == np.sum(np.divmod(net.dst, cols),
                                                                 axis=0) % 2
    assert not both.any()


# ---------------------------------------------------------------------------------------
# custom edge files
# ---------------------------------------------------------------------------------------


GROUPED = """\
# a 5-node net; groups 7 and 3 are shared couplings
inputs 0 1
outputs 4      # trailing comment
0 2 7
1 3 7

2 4 3
3 4 3
2 3 9
"""


def test_edge_file_with_groups(tmp_path):
    p = tmp_path / "net.txt"
    p.write_text(GROUPED)
    net = read_edge_file(p, 2, 1)
    assert net.kind == "custom" and net.n_nodes == 5 and net.n_edges == 5
    np.testing.assert_array_equal(net.src, [0, 1, 2, 3, 2])
    np.testing.assert_array_equal(net.dst, [2, 3, 4, 4, 3])
    np.testing.assert_array_equal(net.input_nodes, [0, 1])
    np.testing.assert_array_equal(net.output_nodes, [4])
    pi = net.param_index
    assert net.n_params == 3
    assert pi[0] == pi[1] and pi[2] == pi[3] and len({pi[0], pi[2], pi[4]}) == 3
    # a shared parameter reads into all its edges and collects all their gradients
    w = np.array([10.0, 20.0, 30.0])
    np.testing.assert_array_equal(net.expand(w), w[pi])
    g = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    want = np.zeros(3)
    np.add.at(want, pi, g)
    np.testing.assert_array_equal(net.reduce(g), want)
    assert net.reduce(g)[pi[0]] == 3.0


def test_edge_file_without_groups(tmp_path):
    p = tmp_path / "net.txt"
    p.write_text("inputs 0\noutputs 2\n0 1\n1 2\n")
    net = read_edge_file(p, 1, 1)
    np.testing.assert_array_equal(net.param_index, [0, 1])
    assert net.n_params == 2


def test_edge_file_via_config(tmp_path):
    p = tmp_path / "net.txt"
    p.write_text(GROUPED)
    net = build_network(Config(arch="custom", edge_file=str(p)), 2, 1)
    assert net.n_edges == 5 and net.n_params == 3


BAD_FILES = {
    "not-an-int": "inputs 0 1\noutputs 4\n0 x\n",
    "four-fields": "inputs 0 1\noutputs 4\n0 2 1 5\n",
    "one-field": "inputs 0 1\noutputs 4\n0\n0 2\n",
    "bad-input-index": "inputs 0 a\noutputs 4\n0 2\n",
    "no-inputs": "outputs 4\n0 4\n",
    "no-outputs": "inputs 0 1\n0 4\n1 4\n",
    "no-edges": "inputs 0 1\noutputs 4\n",
    "wrong-input-count": "inputs 0\noutputs 4\n0 4\n",
    "wrong-output-count": "inputs 0 1\noutputs 3 4\n0 3\n1 4\n",
    "self-loop": "inputs 0 1\noutputs 4\n0 4\n4 4\n1 4\n",
    "negative": "inputs 0 1\noutputs 4\n-1 4\n1 4\n",
    "mixed-groups": "inputs 0 1\noutputs 4\n0 4 1\n1 4\n",
    "float-group": "inputs 0 1\noutputs 4\n0 4 1.5\n1 4 1\n",
    "empty": "",
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_malformed_edge_file(tmp_path, case):
    p = tmp_path / f"{case}.txt"
    p.write_text(BAD_FILES[case])
    with pytest.raises(ValueError) as e:
        read_edge_file(p, 2, 1)
    assert str(p) in str(e.value)


def test_missing_edge_file(tmp_path):
    with pytest.raises(ValueError, match="edge_file"):
        read_edge_file(tmp_path / "nope.txt", 2, 1)
