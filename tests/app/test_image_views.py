"""Image views of stacked (MNIST) networks: every picture against an independent reference.

References: the raw MNIST pixels of the shipped sample, node indices from the closed form
``side = (n - k) / s + 1`` and the documented node order, edges looked up by their two end
nodes (never through the views' own index arrays), and the snapshot's own arrays.
"""

from __future__ import annotations

import numpy as np
import pytest

from xyprop.app.image_views import (
    ImageViews,
    class_outputs,
    counts_text,
    gather,
    input_image,
    kernel_gather,
    stacked_counts,
    stacked_geometry,
)
from xyprop.app.runner import Frame
from xyprop.engine import Config, Trainer, build_network, mnist_sample_path

SAMPLE = str(mnist_sample_path())
K, S = 6, 2  # window, stride: 28 -> 12 -> 4


def cfg(**kw):
    return Config(task="mnist", arch="stacked", window=K, stride=S, batch_size=6, seed=3,
                  data_dir=SAMPLE, parallel=False, **kw)


@pytest.fixture(scope="module")
def unshared():
    tr = Trainer(cfg())
    tr.step()
    tr.step()
    return tr, tr.snapshot()


@pytest.fixture(scope="module")
def shared():
    tr = Trainer(cfg(sheets=2, channels=2, weight_sharing=True))
    tr.step()
    return tr, tr.snapshot()


def frame(snap, state="paused", counter=1):
    return Frame(counter, snap, state, 0.0, None)


def drawn(snap, sample=0):
    v = ImageViews()
    v.configure(snap)
    v.update(frame(snap), sample)
    return v


def wrapped(a):
    return np.angle(np.exp(1j * np.asarray(a, np.float64)))


def sheet_blocks(sheets, channels, n=28):
    """(first node, side) of every hidden sheet by the closed form; channels of a sheet
    follow each other, rows of a channel too (node first + (c * side + r) * side + q)."""
    first, side, out = n * n, n, []
    for _ in range(sheets):
        side = (side - K) // S + 1
        out.append((first, side))
        first += channels * side * side
    return out


def edge_lookup(snap):
    return {(int(a), int(b)): e for e, (a, b) in enumerate(zip(snap.src, snap.dst,
                                                               strict=True))}


# -- input image ---------------------------------------------------------------------------
@pytest.mark.parametrize("row", [0, 4])
def test_input_image_is_the_samples_raw_pixels(unshared, row):
    tr, snap = unshared
    v = drawn(snap, row)
    img = v.inp.data["image"][0]
    assert img.shape == (28, 28)
    # the task's own pixels of this training sample, mapped from [-pi/2, pi/2] to [0, 1]
    x = tr.task.x_train[snap.batch_index[row]].reshape(28, 28)
    assert np.allclose(img, (x + np.pi / 2) / np.pi, atol=1e-6)
    # ... and exactly the raw uint8 digit of the shipped file, with the batch row's class
    with np.load(SAMPLE) as z:
        raw, labels = z["images"], z["labels"]
    match = np.flatnonzero(np.all(np.abs(raw / 255.0 - img) < 1e-5, axis=(1, 2)))
    assert match.size >= 1
    assert labels[match[0]] == np.argmax(snap.batch_targets[row])
    assert v.figures["input"].title.text == f"Input, class {labels[match[0]]}"


def test_before_the_first_step_images_are_blank(unshared):
    tr, _ = unshared
    s0 = Trainer(tr.config).snapshot()
    assert np.isnan(input_image(s0, stacked_geometry(s0), 0)).all()
    v = drawn(s0)
    assert all(np.isnan(a).all() for a in v.phases.data["image"])
    assert np.isnan(class_outputs(s0, 0)["phase"]).all()


# -- hidden sheets ---------------------------------------------------------------------------
@pytest.mark.parametrize("row", [1, 5])
def test_sheet_panels_are_free_phases_and_responses_of_their_nodes(shared, row):
    _, snap = shared
    v = drawn(snap, row)
    phases, resp = v.phases.data["image"], v.resp.data["image"]
    blocks = sheet_blocks(2, 2)
    assert [b[1] for b in blocks] == [12, 4]
    assert len(phases) == len(resp) == 4  # 2 sheets x 2 channels, in sheet-major order
    k = 0
    for first, side in blocks:
        for c in range(2):
            assert phases[k].shape == resp[k].shape == (side, side)
            for r in range(side):
                for q in range(side):
                    node = first + (c * side + r) * side + q
                    assert phases[k][r, q] == pytest.approx(
                        wrapped(snap.free_phases[row, node]), abs=1e-6)
                    assert resp[k][r, q] == pytest.approx(snap.response[node], rel=1e-6)
            k += 1
    # the panels of channel c of sheet l sit in row c, sheet columns left to right
    xs, ys = v.phases.data["x"], v.phases.data["y"]
    assert xs[0] == xs[1] < xs[2] == xs[3] and ys[0] == ys[2] < ys[1] == ys[3]


# -- kernels ---------------------------------------------------------------------------------
def test_shared_kernels_equal_their_parameters_on_every_site(shared):
    _, snap = shared
    v = drawn(snap)
    imgs, texts = v.kern.data["image"], v.titles["kernels"].data["text"]
    look = edge_lookup(snap)
    (f1, s1), (f2, s2) = sheet_blocks(2, 2)
    layers = [(0, 1, 28, f1, s1), (f1, 2, s1, f2, s2)]  # prev first, prev chans, side ...
    assert len(imgs) == 2 + 4
    k = 0
    for l, (f0, c0, s0, fc, sc) in enumerate(layers, 1):
        for cp in range(c0):
            for c in range(2):
                img = imgs[k]
                assert img.shape == (K, K)
                assert texts[k] == f"s{l} ch{c} <- " + ("input" if l == 1 else f"ch{cp}")
                for r, q in ((0, 0), (sc - 1, sc - 1), (sc // 2, 1)):
                    for a in range(K):
                        for b in range(K):
                            src = f0 + (cp * s0 + r * S + a) * s0 + q * S + b
                            e = look[(src, fc + (c * sc + r) * sc + q)]
                            assert img[a, b] == np.float32(snap.w[snap.param_index[e]])
                # one kernel = K*K consecutive parameters, row-major over the window
                p0 = snap.param_index[look[(f0 + cp * s0 * s0, fc + c * sc * sc)]]
                assert np.array_equal(img.ravel(), snap.w[p0:p0 + K * K].astype(np.float32))
                k += 1


def test_unshared_kernels_are_a_mosaic_of_evenly_spaced_sites(unshared):
    _, snap = unshared
    v = drawn(snap)
    (img,) = v.kern.data["image"]
    look = edge_lookup(snap)
    (first, side), = sheet_blocks(1, 1)
    sites = [0, 2, 4, 7, 9, 11]  # 6 evenly spaced of 0..11, ends included
    assert img.shape == (6 * (K + 1) - 1,) * 2
    for i, r in enumerate(sites):
        for j, q in enumerate(sites):
            tile = img[i * (K + 1):i * (K + 1) + K, j * (K + 1):j * (K + 1) + K]
            for a in range(K):
                for b in range(K):
                    e = look[((r * S + a) * 28 + q * S + b, first + r * side + q)]
                    assert tile[a, b] == np.float32(snap.coupling[e])
    gaps = np.zeros(img.shape, bool)
    gaps[K::K + 1, :] = gaps[:, K::K + 1] = True
    assert np.isnan(img[gaps]).all() and np.isfinite(img[~gaps]).all()
    assert "no sharing" in v.caption


# -- outputs by class --------------------------------------------------------------------------
@pytest.mark.parametrize("row", [0, 3])
def test_class_bars_are_the_snapshots_output_phases(unshared, row):
    _, snap = unshared
    v = drawn(snap, row)
    d = v.cls.data
    out = snap.output_nodes
    assert d["x"] == list(range(10))
    assert np.allclose(d["phase"], wrapped(snap.free_phases[row, out]), atol=1e-9)
    assert np.allclose(d["nudged"], wrapped(snap.nudged_phases[row, out]), atol=1e-9)
    assert np.allclose(d["target"], snap.batch_targets[row])
    pred = int(np.argmax(np.sin(snap.free_phases[row, out])))
    grey = [c for i, c in enumerate(d["color"]) if i != pred]
    assert len(set(grey)) == 1 and d["color"][pred] not in grey  # only the prediction stands out


# -- counts ----------------------------------------------------------------------------------
def test_counts_follow_the_closed_forms():
    net = build_network(Config(task="mnist", arch="stacked", window=6, stride=1), 784, 10)
    c = stacked_counts(net)
    assert c["sides"] == [(1, 28), (1, 23)]
    assert c["receptive"] == [23 * 23 * 36] == [19044] and c["readout"] == 5290
    t = counts_text(net)
    assert "28x28 -> 23x23" in t and "19,044 couplings" in t and "readout 5,290" in t
    net = build_network(Config(task="mnist", arch="stacked", window=6, stride=1, intra=4,
                               weight_sharing=True), 784, 10)
    c = stacked_counts(net)
    assert c["receptive_params"] == [36] and c["intra"] == [2 * 23 * 22]
    assert c["params"] == 36 + 2 * 23 * 22 + 5290
    net = build_network(cfg(sheets=2, channels=2, weight_sharing=True), 784, 10)
    c = stacked_counts(net)
    assert c["receptive"] == [2 * 144 * 36, 2 * 2 * 16 * 36]
    assert c["receptive_params"] == [2 * 36, 4 * 36] and c["readout"] == 2 * 16 * 10


# -- the views in the dashboard ---------------------------------------------------------------
def test_sheet_and_kernel_refreshes_are_throttled_while_running(unshared):
    tr, snap = unshared
    v = ImageViews()
    v.configure(snap)
    v.update(frame(snap, "running"), 0, now=10.0)
    first = v.phases.data["image"][0].copy()
    s2 = Trainer.from_snapshot(snap, task=tr.task).step()
    inp, kern = v.inp.data["image"][0].copy(), v.kern.data["image"][0].copy()
    v.update(frame(s2, "running", 2), 0, now=10.1)  # 0.1 s later: nothing redrawn
    assert np.array_equal(v.phases.data["image"][0], first, equal_nan=True)
    assert np.array_equal(v.inp.data["image"][0], inp)
    v.update(frame(s2, "running", 3), 0, now=10.4)  # past SHEETS_DT, not KERNELS_DT
    assert not np.array_equal(v.phases.data["image"][0], first)
    # input and sheets change together: one batch row everywhere
    assert np.allclose(v.inp.data["image"][0], input_image(s2, v.geo, 0))
    assert np.array_equal(v.kern.data["image"][0], kern, equal_nan=True)
    v.update(frame(s2, "running", 4), 0, now=10.6)
    assert np.allclose(v.kern.data["image"][0][:6, :6],
                       gather(s2.coupling, kernel_gather(v.geo, 1, 0, 0))[:6, :6])
    assert not np.array_equal(v.kern.data["image"][0], kern, equal_nan=True)
    v.update(frame(snap, "paused", 5), 0, now=10.61)  # a final frame draws at once
    assert np.array_equal(v.phases.data["image"][0], first)


def test_dashboard_card_only_for_stacked_and_figures_are_reused():
    from xyprop.app.session import Dashboard

    d = Dashboard(cfg(), periodic=False)
    try:
        figs = dict(d.images.figures)
        assert d.image_card.visible and d.images.active
        assert not d.phase_view.visible and not d.coupling_card.visible
        text = d.couplings_pane.object  # 12 x 12 sites x 6 x 6 window; 144 x 10 readout
        assert "receptive fields 5,184 couplings" in text and "readout 1,440" in text
        d.runner.step_once(wait=True)
        d._draw(d.runner.latest(), force=True)
        assert np.isfinite(d.images.phases.data["image"][0]).all()
        d.settings.param.update(task="xor", arch="lattice")
        assert d.do_reset()
        assert not d.image_card.visible and not d.images.active
        assert d.phase_view.visible and d.coupling_card.visible
        assert d.images.phases.data["image"] == []
        assert "sheets" not in d.couplings_pane.object
        d.settings.param.update(task="mnist", arch="stacked", weight_sharing=True)
        assert d.do_reset()
        assert d.image_card.visible
        assert d.images.kern.data["image"][0].shape == (K, K)
        assert d.images.figures == figs  # the same Bokeh figures, re-pointed
    finally:
        d.runner.stop(timeout=10)
