"""Plot data: known snapshots must map to the right arrays, colours and counts."""

from __future__ import annotations

import numpy as np
import pytest

from xyprop.app.plots import (
    COUPLING_PALETTE,
    LiveViews,
    bond_segments,
    colour_limit,
    confusion_data,
    coupling_matrix,
    curve_data,
    geometry_key,
    lattice_image,
    map_colors,
    output_points,
    phase_values,
    sample_label,
    sample_row,
    spread_columns,
    status_values,
    symmetric_limit,
)
from xyprop.app.runner import Frame, Runner, confusion_matrix
from xyprop.app.session import preview_data
from xyprop.engine import Config, Trainer, build_network


@pytest.fixture(scope="module")
def lattice_trainer():
    tr = Trainer(Config(task="iris", arch="lattice", rows=4, cols=5, batch_size=6, seed=2))
    tr.step()
    tr.step()
    return tr


@pytest.fixture(scope="module")
def snap(lattice_trainer):
    return lattice_trainer.snapshot()


def frame(s, confusion=None):
    return Frame(7, s, "running", 123.0, confusion)


def test_map_colors_follows_bokeh_linear_mapper_bins():
    pal = ["a", "b", "c", "d"]
    got = map_colors([-1, -0.51, 0, 0.49, 0.99, 1, 5, -5, np.nan], pal, -1, 1, "nan")
    # bin = floor((v + 1) / 2 * 4), clipped to 0..3
    assert got == ["a", "a", "c", "c", "d", "d", "d", "a", "nan"]


def test_colour_limits_are_sticky():
    assert colour_limit(1.0, [0.5, -2.0]) == pytest.approx(2.2)  # grows at once
    assert colour_limit(1.0, [0.7]) == 1.0  # small changes keep the colour bar still
    assert colour_limit(1.0, [0.2]) == pytest.approx(0.22)  # shrinks when far too wide


def test_coupling_segment_colours(snap):
    w = snap.coupling.copy()
    w[0], w[1], w[2] = 2.0, -2.0, 0.0
    w[3:] = np.clip(w[3:], -1.5, 1.5)
    lim = symmetric_limit(w)
    assert lim == 2.0
    cols = map_colors(w, COUPLING_PALETTE, -lim, lim)
    assert cols[0] == COUPLING_PALETTE[-1]  # strongest positive: warm end
    assert cols[1] == COUPLING_PALETTE[0]  # strongest negative: cool end
    assert cols[2] == COUPLING_PALETTE[len(COUPLING_PALETTE) // 2]  # zero: the middle


def test_segments_join_the_bonded_sites(snap):
    seg = bond_segments(snap.coords, snap.src, snap.dst)
    rows, cols = snap.shape
    # node r*cols+c is drawn at (c, r): independent of the coords array
    r0, c0 = np.divmod(snap.src, cols)
    r1, c1 = np.divmod(snap.dst, cols)
    for k, v in (("x0", c0), ("y0", r0), ("x1", c1), ("y1", r1)):
        assert np.array_equal(seg[k], v.astype(np.float32)), k
    # nearest or diagonal neighbours (8-neighbour lattice): Chebyshev distance 1, and
    # 2(R-1)(C-1) of the bonds are diagonals
    dx, dy = np.abs(seg["x1"] - seg["x0"]), np.abs(seg["y1"] - seg["y0"])
    assert np.all(np.maximum(dx, dy) == 1)
    assert np.sum((dx == 1) & (dy == 1)) == 2 * (rows - 1) * (cols - 1)
    assert seg["x0"].dtype == np.float32


def test_skip_bonds_are_bowed_aside():
    net = build_network(Config(arch="lattice", rows=6, cols=4, skip_length=3, skip_count=2),
                        2, 1)
    seg = bond_segments(net.coords, net.src, net.dst)
    long = np.abs(seg["y1"] - seg["y0"]) == 3
    assert long.sum() == 2
    assert np.allclose(seg["x0"][long] % 1, 0.25)


@pytest.mark.parametrize("k", [0, 3, 5])
def test_phase_image_is_the_selected_samples_free_phases(snap, k):
    ph = phase_values(snap, k)
    img = lattice_image(ph["free"], snap.shape)
    rows, cols = snap.shape
    for r in range(rows):
        for c in range(cols):
            ref = np.angle(np.exp(1j * snap.free_phases[k, r * cols + c]))
            assert img[r, c] == pytest.approx(ref, abs=1e-6)
    d = np.angle(np.exp(1j * (snap.nudged_phases[k] - snap.free_phases[k])))
    assert np.allclose(ph["diff"], d, atol=1e-5)


def test_sample_row_clamps_and_handles_no_batch(snap):
    assert sample_row(snap, 99) == snap.free_phases.shape[0] - 1
    assert sample_row(snap, -4) == 0
    s0 = Trainer(Config(task="xor", rows=3, cols=3)).snapshot()
    assert sample_row(s0, 0) is None
    assert np.isnan(phase_values(s0, 0)["free"]).all()


def test_sample_label_names_the_training_sample_and_class(lattice_trainer, snap):
    k = 4
    idx = int(snap.batch_index[k])
    label = int(lattice_trainer.task.y_train[idx])
    assert sample_label(snap, k) == f"training sample #{idx}, class {label}"


def test_response_image_equals_response(snap):
    img = lattice_image(snap.response, snap.shape)
    assert img.shape == snap.shape
    assert np.allclose(img.ravel(), snap.response)
    assert np.allclose(img[1, 2], snap.response[1 * snap.shape[1] + 2])


def test_coupling_matrix_is_symmetric_with_gaps(snap):
    n = snap.h.size
    m = coupling_matrix(n, snap.src, snap.dst, snap.coupling)
    assert np.array_equal(np.isnan(m), np.isnan(m.T))
    assert np.allclose(m[snap.src, snap.dst], snap.coupling.astype(np.float32))
    assert np.isnan(m).sum() == n * n - 2 * snap.src.size


def test_confusion_counts_sum_to_the_test_set(lattice_trainer):
    tr = lattice_trainer
    ev = tr.evaluate("test")
    cm = confusion_matrix(tr.task.y_test, ev.pred, 3)
    d = confusion_data(cm, 3)
    assert sum(d["count"]) == tr.task.y_test.size
    rows = np.zeros(3, int)
    for t, c in zip(d["true"], d["count"], strict=True):
        rows[int(t)] += c
    assert np.array_equal(rows, np.bincount(tr.task.y_test, minlength=3))
    assert confusion_data(None, 3)["count"] == [0] * 9


def test_curves_follow_history(lattice_trainer):
    tr = Trainer(Config(task="xor", rows=3, cols=3, seed=1))
    for _ in range(3):
        tr.step()
    c = curve_data(tr.history)
    assert c["epoch"].tolist() == [1, 2, 3]
    assert c["test_accuracy"].tolist() == [h["test_accuracy"] for h in tr.history]


def test_output_points_sit_on_the_unit_circle_at_their_targets(snap):
    p = output_points(snap, 2)
    assert np.allclose(np.hypot(p["x"], p["y"]), 1)
    assert np.allclose(p["ty"], np.sin(snap.batch_targets[2]))
    assert np.allclose(np.abs(p["ty"]), 1)  # targets are +-pi/2
    assert np.allclose(np.arctan2(p["y"], p["x"]),
                       np.angle(np.exp(1j * snap.free_phases[2, snap.output_nodes])))


def test_status_values(snap):
    st = status_values(frame(snap))
    assert st["step"] == 2 and st["samples_per_s"] == 123.0 and st["state"] == "running"


def test_live_views_write_the_frame_into_their_sources(snap):
    v = LiveViews(snap)
    cm = np.eye(3, dtype=int) * 5
    v.update(frame(snap, cm), sample=1)
    ph = phase_values(snap, 1)
    # lattice panels are images: site r*cols+c at row r, column c
    assert np.array_equal(v.grid.data["free"][0], lattice_image(ph["free"], snap.shape))
    assert np.allclose(v.grid.data["response"][0], lattice_image(snap.response, snap.shape))
    imgs = [r for r in v.figures["phases"].renderers if r.glyph.__class__.__name__ == "Image"]
    assert all(r.visible and r.glyph.dw == snap.shape[1] for r in imgs)
    assert np.allclose(v.edges.data["w"], snap.coupling)
    lim = np.abs(snap.coupling).max()
    assert v.w_map.low == -v.w_map.high  # symmetric, zero in the middle of the map
    assert lim <= v.w_map.high <= 1.1 * lim + 1e-12
    assert sum(v.cm.data["count"]) == 15
    tw = v._twins["w"]  # the colour bar's own mapper follows the limits
    assert (tw.low, tw.high) == (v.w_map.low, v.w_map.high)
    assert set(v.figures) == {"phases", "couplings", "loss", "accuracy", "outputs",
                              "confusion"}
    # panels of one figure: free | nudged | diff | response, one panel pitch apart
    shifts = sorted({t.value for g, k, t in v._shifts if g == "phases"})
    assert shifts[0] == 0 and len(shifts) == 4
    assert np.allclose(np.diff(shifts), shifts[1])
    assert [r.glyph.x + 0.5 for r in imgs] == shifts
    assert {"xy-view-phase_nudged", "xy-view-response"} <= set(v.figures["phases"].css_classes)


def test_layered_views_use_the_coupling_matrix_and_switch_back(snap):
    s = Runner(Config(task="iris", arch="layered", layers=(5,))).latest().snapshot
    v = LiveViews(s)
    assert not v.lattice and len(v.edges.data["x0"]) == 0
    m = v.mat.data["w"][0]
    assert m.shape == (s.h.size, s.h.size)
    assert np.allclose(m[s.src, s.dst], s.coupling)
    f = v.figures["couplings"]
    seg = [r for r in f.renderers if r.glyph.__class__.__name__ == "Segment"][0]
    imgs = [r for r in f.renderers if r.glyph.__class__.__name__ == "Image"]
    assert seg.visible is False and all(r.visible for r in imgs)
    n = s.h.size
    assert [r.glyph.x for r in imgs] == [0, n * (1 + LiveViews.GAP)]  # w | change of w
    assert (f.x_range.start, f.y_range.start) == (0, n)  # row 0 of the matrix on top
    # the same figures re-pointed at a lattice: bonds on, matrix off, flipped rows
    assert geometry_key(snap) != v.key
    v.configure(snap)
    v.update(frame(snap), 0)
    assert seg.visible and not any(r.visible for r in imgs)
    assert len(v.edges.data["w"]) == snap.src.size
    assert v.figures["phases"].y_range.start > v.figures["phases"].y_range.end
    assert v.figures["confusion"].x_range.factors == ["0", "1", "2"]


def test_preview_data_draws_every_bond():
    net = build_network(Config(arch="lattice", rows=3, cols=4), 2, 1)
    nodes, edges = preview_data(net)
    # closed form of an 8-neighbour 3 x 4 lattice: 2RC - R - C + 2(R-1)(C-1)
    assert len(nodes["x"]) == 12 and len(edges["x0"]) == 2 * 12 - 3 - 4 + 2 * 2 * 3
    assert nodes["color"][int(net.input_nodes[0])] != nodes["color"][5]


def test_spread_columns_gives_every_layer_the_same_height():
    net = build_network(Config(arch="layered", layers=(6,)), 64, 10)
    xy = spread_columns(net.coords)
    assert np.array_equal(xy[:, 0], net.coords[:, 0])
    for layer in range(3):
        y = xy[net.layer == layer, 1]
        assert y.min() == pytest.approx(-31.5) and y.max() == pytest.approx(31.5)
        assert np.all(np.diff(y) > 0)  # order inside a layer is kept


def test_big_sparse_networks_draw_bonds_not_a_matrix(monkeypatch):
    tr = Trainer(Config(task="digits", arch="stacked", window=3, stride=1))
    tr.step()
    s = tr.snapshot()
    v = LiveViews(s)
    assert not v.bonds and v.mat.data["w"][0].shape == (s.h.size,) * 2  # 110 nodes: matrix
    monkeypatch.setattr(LiveViews, "MATRIX_MAX", 50)
    v.configure(s)
    v.update(frame(s), 0, now=10.0)
    assert v.bonds and len(v.edges.data["x0"]) == s.src.size
    assert np.allclose(v.edges.data["w"], s.coupling)
    # a stacked net keeps its 2-D sheet layout (no column spreading)
    assert np.allclose(v.nodes.data["x"], s.coords[:, 0])
    assert np.allclose(v.nodes.data["y"], s.coords[:, 1])
