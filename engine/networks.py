"""Architectures -> Network: edge arrays, shared-parameter index, node roles, drawing coords.

Edge counts (physics.md): all-to-all ``F(F-1)/2 + n_in F`` with ``F`` free nodes; layered
``sum_k n_k n_{k+1}``; lattice 4-neighbour ``2RC - R - C``, 8-neighbour adds
``2(R-1)(C-1)``; skip connections add ``skip_count``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import Config


@dataclass(frozen=True, eq=False)
class Network:
    """A graph of XY oscillators.

    Attributes
    ----------
    n_nodes : int
    src, dst : ndarray, int64 (E,)
        Endpoints of each coupling (edge).
    param_index : ndarray, int64 (E,)
        Trainable coupling parameter read by each edge (weight sharing when repeated).
    n_params : int
        Number of trainable coupling parameters.
    input_nodes, output_nodes : ndarray, int64
        Clamped input sites, in input-feature order; output sites, in class order.
    coords : ndarray, float64 (N, 2)
        (x, y) drawing position of each node; for lattices (col, row).
    layer : ndarray, int64 (N,)
        Layer (layered nets) or 0; used for drawing.
    kind : str
        Architecture name.
    shape : tuple or None
        (rows, cols) for lattices.
    depth : int
        Largest graph distance from an input to any node (sets the over-relaxation).
    sheets : tuple of (first_node, channels, side)
        Stacked networks: the node block of each sheet, input sheet first; node
        ``first + (c * side + r) * side + q`` is channel c, row r, column q.
    """

    n_nodes: int
    src: np.ndarray
    dst: np.ndarray
    param_index: np.ndarray
    n_params: int
    input_nodes: np.ndarray
    output_nodes: np.ndarray
    coords: np.ndarray
    layer: np.ndarray
    kind: str
    shape: tuple[int, int] | None = None
    depth: int = field(default=1)
    sheets: tuple = ()

    @property
    def n_edges(self) -> int:
        return int(self.src.shape[0])

    @property
    def free(self) -> np.ndarray:
        """Boolean (N,): True for sites that move (hidden and output)."""
        m = np.ones(self.n_nodes, dtype=np.bool_)
        m[self.input_nodes] = False
        return m

    @property
    def out_pos(self) -> np.ndarray:
        """int64 (N,): output index of each node, -1 if not an output."""
        p = np.full(self.n_nodes, -1, dtype=np.int64)
        p[self.output_nodes] = np.arange(self.output_nodes.size)
        return p

    def adjacency(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR adjacency: ``indptr`` (N+1,), ``nbr`` (2E,), ``edge`` (2E,) edge id per slot."""
        ends = np.concatenate([self.src, self.dst])
        others = np.concatenate([self.dst, self.src])
        eid = np.concatenate([np.arange(self.n_edges)] * 2)
        order = np.argsort(ends, kind="stable")
        indptr = np.zeros(self.n_nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(ends, minlength=self.n_nodes), out=indptr[1:])
        return indptr, others[order].astype(np.int64), eid[order].astype(np.int64)

    def update_order(self) -> np.ndarray:
        """Free sites in sweep order: red then black on a bipartite lattice, else index."""
        free = np.flatnonzero(self.free)
        if self.kind == "lattice" and self.shape is not None:
            r, c = np.divmod(free, self.shape[1])
            free = free[np.argsort((r + c) % 2, kind="stable")]
        return free.astype(np.int64)

    def expand(self, w: np.ndarray) -> np.ndarray:
        """Per-parameter couplings (n_params,) -> per-edge couplings (E,)."""
        return np.asarray(w, dtype=np.float64)[self.param_index]

    def reduce(self, g_edge: np.ndarray) -> np.ndarray:
        """Per-edge gradient (E,) -> per-parameter gradient (n_params,), summed over shares."""
        return np.bincount(self.param_index, weights=g_edge, minlength=self.n_params)


def _spread(n: int, width: int, placement: str, what: str) -> np.ndarray:
    if n > width:
        raise ValueError(
            f"config field 'cols': got {width}; allowed: at least {n} columns to hold the "
            f"{n} {what} nodes on one edge of the lattice"
        )
    if placement == "start":
        return np.arange(n)
    if placement == "centre":
        return np.arange(n) + (width - n) // 2
    return np.floor((np.arange(n) + 0.5) * width / n).astype(np.int64)


def _finish(n_nodes, edges, inputs, outputs, coords, layer, kind, shape=None, share=None,
            sheets=()):
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    src, dst = edges[:, 0].copy(), edges[:, 1].copy()
    if share is None:
        share = np.arange(src.size, dtype=np.int64)
    n_params = int(share.max()) + 1 if share.size else 0
    net = Network(n_nodes, src, dst, np.asarray(share, dtype=np.int64), n_params,
                  np.asarray(inputs, dtype=np.int64), np.asarray(outputs, dtype=np.int64),
                  np.asarray(coords, dtype=np.float64), np.asarray(layer, dtype=np.int64),
                  kind, shape, 1, tuple(sheets))
    object.__setattr__(net, "depth", _depth(net))
    return net


def _depth(net: Network) -> int:
    """Largest BFS distance from the inputs (or from node 0 without inputs)."""
    indptr, nbr, _ = net.adjacency()
    dist = np.full(net.n_nodes, -1)
    starts = net.input_nodes if net.input_nodes.size else np.array([0])
    dist[starts] = 0
    q = deque(int(s) for s in starts)
    while q:
        i = q.popleft()
        for j in nbr[indptr[i]:indptr[i + 1]]:
            if dist[j] < 0:
                dist[j] = dist[i] + 1
                q.append(int(j))
    return max(1, int(dist.max()))


def lattice(rows, cols, n_in, n_out, neighbourhood=4, skip_length=0, skip_count=0,
            input_placement="spread", output_placement="spread") -> Network:
    """Open-boundary rows x cols lattice; inputs on row 0, outputs on the last row.

    Node ``r * cols + c`` sits at (c, r). Skip connections are vertical bonds of length
    ``skip_length`` (towards the outputs, the direction the nudge has to travel), laid in
    chains from the top row down the columns, columns taken in an evenly spread order.
    """
    if rows < 2:
        raise ValueError(f"config field 'rows': got {rows}; allowed: >= 2 so inputs (first "
                         "row) and outputs (last row) differ")
    if neighbourhood not in (4, 8):
        raise ValueError(f"config field 'neighbourhood': got {neighbourhood!r}; allowed: 4 or 8")
    if skip_count and skip_length < 2:
        # length 1 would duplicate the nearest-neighbour bonds (and 0 is no bond at all)
        raise ValueError(f"config field 'skip_length': got {skip_length}; allowed: an integer "
                         ">= 2 when skip_count > 0")
    idx = np.arange(rows * cols).reshape(rows, cols)
    edges = [np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], 1),
             np.stack([idx[:-1, :].ravel(), idx[1:, :].ravel()], 1)]
    if neighbourhood == 8:
        edges += [np.stack([idx[:-1, :-1].ravel(), idx[1:, 1:].ravel()], 1),
                  np.stack([idx[:-1, 1:].ravel(), idx[1:, :-1].ravel()], 1)]
    if skip_count:
        cands = []
        # visit columns middle-out-ish by bit-reversal-like spreading: evenly spaced first
        col_order = np.argsort([_vdc(k) for k in range(cols)], kind="stable")
        for c in col_order:
            for r in range(0, rows - skip_length, skip_length):
                cands.append((idx[r, c], idx[r + skip_length, c]))
        if skip_length >= rows or skip_count > len(cands):
            raise ValueError(
                f"config field 'skip_count': got {skip_count}; allowed: at most {len(cands)} "
                f"vertical skips of length {skip_length} on a {rows}x{cols} lattice"
            )
        edges.append(np.array(cands[:skip_count], dtype=np.int64))
    inputs = idx[0, _spread(n_in, cols, input_placement, "input")]
    outputs = idx[rows - 1, _spread(n_out, cols, output_placement, "output")]
    r, c = np.divmod(np.arange(rows * cols), cols)
    coords = np.stack([c, r], 1).astype(float)
    return _finish(rows * cols, np.concatenate(edges), inputs, outputs, coords,
                   np.zeros(rows * cols), "lattice", (rows, cols))


def _vdc(k: int) -> float:
    """Van der Corput radical inverse: 0, 1/2, 1/4, 3/4, ... spreads columns evenly."""
    x, d = 0.0, 0.5
    while k:
        x += d * (k & 1)
        k >>= 1
        d *= 0.5
    return x


def all_to_all(n_in, n_hidden, n_out) -> Network:
    """Every pair of non-input nodes coupled, and every input to every non-input node."""
    n = n_in + n_hidden + n_out
    inputs = np.arange(n_in)
    free = np.arange(n_in, n)
    iu = np.triu_indices(free.size, 1)
    pairs = np.stack([free[iu[0]], free[iu[1]]], 1)
    io = np.stack(np.meshgrid(inputs, free, indexing="ij"), -1).reshape(-1, 2)
    layer = np.r_[np.zeros(n_in), np.ones(n_hidden), 2 * np.ones(n_out)]
    coords = _layer_coords(layer)
    return _finish(n, np.concatenate([io, pairs]), inputs, np.arange(n - n_out, n), coords,
                   layer, "all-to-all")


def layered(sizes) -> Network:
    """Dense layered ``[n_in, n_1, ..., n_out]``: consecutive layers fully bipartite."""
    sizes = list(sizes)
    starts = np.r_[0, np.cumsum(sizes)]
    edges = []
    for k in range(len(sizes) - 1):
        a = np.arange(starts[k], starts[k + 1])
        b = np.arange(starts[k + 1], starts[k + 2])
        edges.append(np.stack(np.meshgrid(a, b, indexing="ij"), -1).reshape(-1, 2))
    layer = np.repeat(np.arange(len(sizes)), sizes)
    return _finish(int(starts[-1]), np.concatenate(edges), np.arange(sizes[0]),
                   np.arange(starts[-2], starts[-1]), _layer_coords(layer), layer, "layered")


def _layer_coords(layer: np.ndarray) -> np.ndarray:
    """Columns of nodes, one per layer, centred vertically."""
    coords = np.zeros((layer.size, 2))
    for k in np.unique(layer):
        m = layer == k
        n = int(m.sum())
        coords[m, 0] = k
        coords[m, 1] = np.arange(n) - (n - 1) / 2
    return coords


def read_edge_file(path, n_in, n_out) -> Network:
    """A custom network from a text edge list.

    Format: ``#`` starts a comment; a line ``inputs i j ...`` and a line ``outputs k ...``
    name the roles (in feature and class order); every other line is ``src dst`` or
    ``src dst group`` where equal ``group`` integers share one trainable coupling.
    """
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except OSError as e:
        raise ValueError(f"config field 'edge_file': cannot read {str(p)!r} ({e.strerror})"
                         ) from None
    inputs = outputs = None
    edges, groups = [], []
    for ln, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].split()
        if not line:
            continue
        try:
            if line[0] in ("inputs", "outputs"):
                vals = [int(v) for v in line[1:]]
                if line[0] == "inputs":
                    inputs = vals
                else:
                    outputs = vals
            elif len(line) in (2, 3):
                edges.append((int(line[0]), int(line[1])))
                groups.append(int(line[2]) if len(line) == 3 else None)
            else:
                raise ValueError
        except ValueError:
            raise ValueError(f"edge file {str(p)!r} line {ln}: {raw.strip()!r} is not "
                             "'src dst [group]', 'inputs ...' or 'outputs ...'") from None
    if inputs is None or outputs is None or not edges:
        raise ValueError(f"edge file {str(p)!r}: needs an 'inputs' line, an 'outputs' line "
                         "and at least one edge")
    if len(inputs) != n_in or len(outputs) != n_out:
        raise ValueError(f"edge file {str(p)!r}: has {len(inputs)} inputs and {len(outputs)} "
                         f"outputs; the task needs {n_in} and {n_out}")
    e = np.array(edges, dtype=np.int64)
    if (e < 0).any() or (e[:, 0] == e[:, 1]).any():
        raise ValueError(f"edge file {str(p)!r}: node indices must be >= 0 and no self-loops")
    n = int(max(e.max(), max(inputs + outputs))) + 1
    if any(g is not None for g in groups):
        if any(g is None for g in groups):
            raise ValueError(f"edge file {str(p)!r}: give a group on every edge or on none")
        _, share = np.unique(np.array(groups), return_inverse=True)
    else:
        share = None
    layer = np.ones(n)
    layer[inputs] = 0
    layer[outputs] = 2
    return _finish(n, e, inputs, outputs, _layer_coords(layer), layer, "custom", share=share)


def _grid_edges(idx: np.ndarray, neighbourhood: int) -> np.ndarray:
    """Open-boundary 4- or 8-neighbour bonds of a 2-D index array."""
    e = [np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], 1),
         np.stack([idx[:-1, :].ravel(), idx[1:, :].ravel()], 1)]
    if neighbourhood == 8:
        e += [np.stack([idx[:-1, :-1].ravel(), idx[1:, 1:].ravel()], 1),
              np.stack([idx[:-1, 1:].ravel(), idx[1:, :-1].ravel()], 1)]
    return np.concatenate(e)


def stacked(side, n_out, window=6, stride=1, channels=1, sheets=1, weight_sharing=False,
            intra=0, readout="dense") -> Network:
    """Stacked lattices with local receptive fields (P26's MNIST networks).

    A clamped ``side`` x ``side`` input sheet feeds ``sheets`` hidden sheets, each of
    ``channels`` channels of side ``(prev - window) // stride + 1``; hidden site (c, r, q)
    couples to the ``window`` x ``window`` patch at (r * stride, q * stride) of every
    channel of the previous sheet. With ``weight_sharing`` the couplings of one
    (channel, previous channel, window offset) share one parameter: a convolution kernel.
    ``intra`` = 4 or 8 adds lattice bonds inside each hidden channel. The readout couples
    every site of the last sheet to every output ("dense") or each output to one
    column strip of it ("local").

    Counts: 28x28 input, window 6, stride 1 -> one 23x23 sheet, 19,044 input couplings;
    dense readout to 10 outputs adds 5,290.
    """
    sides, prev = [side], side
    for _ in range(sheets):
        if prev < window or (prev - window) % stride:
            raise ValueError(
                f"config field 'window': got {window} with stride {stride} on a {prev}x{prev} "
                f"sheet; allowed: window <= {prev} and (side - window) divisible by stride"
            )
        prev = (prev - window) // stride + 1
        sides.append(prev)
    chans = [1] + [channels] * sheets
    firsts = np.r_[0, np.cumsum([c * s * s for c, s in zip(chans, sides, strict=True)])]
    n = int(firsts[-1]) + n_out
    edges, share, next_param = [], [], 0
    for l in range(1, sheets + 1):
        ps, cs = sides[l - 1], sides[l]
        prev_idx = firsts[l - 1] + np.arange(chans[l - 1] * ps * ps).reshape(chans[l - 1], ps, ps)
        cur_idx = firsts[l] + np.arange(channels * cs * cs).reshape(channels, cs, cs)
        a, b = np.meshgrid(np.arange(window), np.arange(window), indexing="ij")
        r, q = np.meshgrid(np.arange(cs), np.arange(cs), indexing="ij")
        # (channel, prev channel, r, q, a, b) -> one edge each
        rows = r[:, :, None, None] * stride + a[None, None]
        cols = q[:, :, None, None] * stride + b[None, None]
        for c in range(channels):
            for cp in range(chans[l - 1]):
                src = prev_idx[cp][rows, cols]  # (cs, cs, k, k)
                dst = np.broadcast_to(cur_idx[c][:, :, None, None], src.shape)
                edges.append(np.stack([src.ravel(), dst.ravel()], 1))
                if weight_sharing:
                    kern = next_param + np.arange(window * window).reshape(window, window)
                    share.append(np.broadcast_to(kern, src.shape).ravel())
                    next_param += window * window
                else:
                    share.append(next_param + np.arange(src.size))
                    next_param += src.size
        if intra:
            for c in range(channels):
                e = _grid_edges(cur_idx[c], intra)
                edges.append(e)
                share.append(next_param + np.arange(len(e)))
                next_param += len(e)
    last = firsts[sheets] + np.arange(channels * sides[-1] ** 2).reshape(channels, sides[-1], -1)
    outputs = firsts[-1] + np.arange(n_out)
    if readout == "dense":
        e = np.stack(np.meshgrid(last.ravel(), outputs, indexing="ij"), -1).reshape(-1, 2)
    else:
        strips = np.array_split(np.arange(sides[-1]), n_out)
        e = np.concatenate([np.stack([last[:, :, cols].ravel(),
                                      np.full(last[:, :, cols].size, o)], 1)
                            for o, cols in zip(outputs, strips, strict=True)])
    edges.append(e)
    share.append(next_param + np.arange(len(e)))
    coords = np.zeros((n, 2))
    layer = np.zeros(n, dtype=np.int64)
    x0 = 0.0
    for l, (c, sd) in enumerate(zip(chans, sides, strict=True)):
        blk = np.arange(c * sd * sd)
        ch, rr, qq = blk // (sd * sd), (blk // sd) % sd, blk % sd
        coords[firsts[l] + blk, 0] = x0 + qq
        coords[firsts[l] + blk, 1] = rr + ch * (sd + 2)
        layer[firsts[l] + blk] = l
        x0 += sd + 3
    coords[outputs, 0] = x0
    coords[outputs, 1] = np.arange(n_out) * max(sides[-1], n_out) / n_out
    layer[outputs] = sheets + 1
    sheet_info = [(int(firsts[l]), chans[l], sides[l]) for l in range(sheets + 1)]
    return _finish(n, np.concatenate(edges), np.arange(side * side), outputs, coords, layer,
                   "stacked", share=np.concatenate(share), sheets=sheet_info)


def build_network(config: Config, n_in: int, n_out: int) -> Network:
    """The network that ``config`` describes for a task with ``n_in`` inputs, ``n_out`` outputs."""
    c = config
    if c.arch == "lattice":
        return lattice(c.rows, c.cols, n_in, n_out, c.neighbourhood, c.skip_length,
                       c.skip_count, c.input_placement, c.output_placement)
    if c.arch == "all-to-all":
        return all_to_all(n_in, c.hidden, n_out)
    if c.arch == "layered":
        return layered([n_in, *c.layers, n_out])
    if c.arch == "stacked":
        side = int(round(n_in ** 0.5))
        if side * side != n_in:
            raise ValueError(f"config field 'arch': got 'stacked' for a task with {n_in} "
                             "inputs; allowed: image tasks (digits, mnist) with square inputs")
        return stacked(side, n_out, c.window, c.stride, c.channels, c.sheets,
                       c.weight_sharing, c.intra, c.readout)
    return read_edge_file(c.edge_file, n_in, n_out)
