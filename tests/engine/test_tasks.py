"""Tests for xyprop.engine.tasks: task data, phase encoding, predictions, MNIST loading."""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from xyprop.engine import tasks
from xyprop.engine.tasks import (
    CLASSIFICATION_TASKS,
    TaskData,
    encode_targets,
    load_mnist,
    load_task,
    mnist_sample_path,
    predict,
)

HP = math.pi / 2


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file (magic 0x0000 08 ndim, big-endian dims)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(">" + "I" * array.ndim, *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _fake_mnist(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


def _write_idx_set(folder: Path, compress: bool) -> tuple[np.ndarray, ...]:
    img_tr, lab_tr = _fake_mnist(30, 1)
    img_te, lab_te = _fake_mnist(12, 2)
    files = {
        "train-images-idx3-ubyte": img_tr,
        "train-labels-idx1-ubyte": lab_tr,
        "t10k-images-idx3-ubyte": img_te,
        "t10k-labels-idx1-ubyte": lab_te,
    }
    for name, arr in files.items():
        raw = _idx_bytes(arr)
        if compress:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return img_tr, lab_tr, img_te, lab_te


def _assert_same(got: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...]) -> None:
    assert len(got) == 4
    for g, w in zip(got, want, strict=True):
        assert g.dtype == np.uint8
        np.testing.assert_array_equal(g, w)


# --------------------------------------------------------------------------------------------
# XOR, encoding, prediction
# --------------------------------------------------------------------------------------------


def test_xor_patterns_and_targets():
    t = load_task("xor")
    want_x = np.array([[-HP, -HP], [-HP, HP], [HP, -HP], [HP, HP]])
    np.testing.assert_array_equal(t.x_train, want_x)
    np.testing.assert_array_equal(t.x_test, want_x)
    np.testing.assert_array_equal(t.y_train, [0, 1, 1, 0])
    np.testing.assert_array_equal(t.y_test, [0, 1, 1, 0])
    assert t.x_train.dtype == np.float64 and t.y_train.dtype == np.int64
    assert (t.n_inputs, t.n_outputs, t.n_classes, t.image_shape) == (2, 1, 2, None)
    # Target -pi/2 when the inputs are equal, +pi/2 otherwise.
    targets = t.targets(t.y_train)
    assert targets.shape == (4, 1) and targets.dtype == np.float64
    np.testing.assert_array_equal(targets[:, 0], [-HP, HP, HP, -HP])
    np.testing.assert_array_equal(predict(targets), t.y_train)


def test_encode_targets_one_hot_phases():
    out = encode_targets(np.array([2, 0]), 3)
    np.testing.assert_array_equal(out, [[-HP, -HP, HP], [HP, -HP, -HP]])
    assert out.dtype == np.float64


@pytest.mark.parametrize("n_outputs", [1, 3, 10])
def test_predict_inverts_encode_targets(n_outputs):
    n_classes = 2 if n_outputs == 1 else n_outputs
    y = np.random.default_rng(0).integers(0, n_classes, size=200)
    got = predict(encode_targets(y, n_outputs))
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, y)


def test_predict_uses_sine_not_raw_phase():
    # Phase 3.0 is larger than 1.6 but sin(3.0) = 0.14 < sin(1.6) = 0.9996.
    assert predict(np.array([[3.0, 1.6]])).tolist() == [1]
    # Wrapped phases: -3pi/2 is the same point as +pi/2.
    assert predict(np.array([[-1.5 * math.pi], [-0.1]])).tolist() == [1, 0]


def test_encode_targets_rejects_bad_labels():
    with pytest.raises(ValueError):
        encode_targets(np.array([0, 3]), 3)
    with pytest.raises(ValueError):
        encode_targets(np.array([0, 2]), 1)
    with pytest.raises(ValueError):
        predict(np.zeros(5))


# --------------------------------------------------------------------------------------------
# Iris and digits
# --------------------------------------------------------------------------------------------


def test_iris_split_stratified_and_scaled():
    t = load_task("iris", seed=0)
    assert t.x_train.shape == (105, 4) and t.x_test.shape == (45, 4)
    np.testing.assert_array_equal(np.bincount(t.y_train), [35, 35, 35])
    np.testing.assert_array_equal(np.bincount(t.y_test), [15, 15, 15])
    assert (t.n_outputs, t.n_classes) == (3, 3)
    for x in (t.x_train, t.x_test):
        assert x.min() >= -HP and x.max() <= HP
    # Scaled with the training set's own min/max: every feature hits both bounds in train.
    np.testing.assert_allclose(t.x_train.min(axis=0), -HP)
    np.testing.assert_allclose(t.x_train.max(axis=0), HP)
    assert "105/45" in t.split and "seed 0" in t.split


def test_iris_seed_changes_split_deterministically():
    a, b, c = load_task("iris", seed=1), load_task("iris", seed=1), load_task("iris", seed=2)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)


def test_digits_split_100_70_per_class_and_deterministic():
    t = load_task("digits", seed=3)
    assert t.x_train.shape == (1000, 64) and t.x_test.shape == (700, 64)
    np.testing.assert_array_equal(np.bincount(t.y_train, minlength=10), [100] * 10)
    np.testing.assert_array_equal(np.bincount(t.y_test, minlength=10), [70] * 10)
    assert t.image_shape == (8, 8) and t.n_outputs == 10
    assert t.x_train.min() >= -HP and t.x_train.max() <= HP
    # Global scaling from 0..16: phases are exactly k/16 * pi - pi/2 for integer k.
    k = (t.x_train + HP) / math.pi * 16
    np.testing.assert_allclose(k, np.round(k), atol=1e-9)
    # No image is in both sets (rows of sklearn digits are distinct images).
    train_rows = {row.tobytes() for row in t.x_train}
    assert sum(row.tobytes() in train_rows for row in t.x_test) < 5
    again = load_task("digits", seed=3)
    np.testing.assert_array_equal(t.x_train, again.x_train)
    np.testing.assert_array_equal(t.y_test, again.y_test)
    other = load_task("digits", seed=4)
    assert not np.array_equal(t.x_train, other.x_train)


def test_digits_stratified_subsets():
    t = load_task("digits", train_size=200, test_size=50)
    np.testing.assert_array_equal(np.bincount(t.y_train, minlength=10), [20] * 10)
    np.testing.assert_array_equal(np.bincount(t.y_test, minlength=10), [5] * 10)
    assert "200/50" in t.split


def test_bad_task_name_lists_allowed():
    with pytest.raises(ValueError) as err:
        load_task("cifar")
    msg = str(err.value)
    assert "cifar" in msg
    for name in CLASSIFICATION_TASKS:
        assert name in msg


@pytest.mark.parametrize(
    ("name", "kwargs", "field"),
    [
        ("digits", {"train_size": 5000}, "train_size"),
        ("iris", {"test_size": 0}, "test_size"),
        ("xor", {"train_size": 2}, "train_size"),
    ],
)
def test_bad_sizes_name_field_and_value(name, kwargs, field):
    with pytest.raises(ValueError) as err:
        load_task(name, **kwargs)
    msg = str(err.value)
    assert field in msg and str(kwargs[field]) in msg and "allowed" in msg


def test_taskdata_validates_shapes():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError):
        TaskData("xor", x, np.zeros(4, dtype=np.int64), x, np.zeros(3, dtype=np.int64), 2, None, "")


# --------------------------------------------------------------------------------------------
# MNIST files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_idx(tmp_path, compress):
    want = _write_idx_set(tmp_path, compress)
    _assert_same(load_mnist(tmp_path), want)


def test_load_mnist_rejects_bad_magic(tmp_path):
    _write_idx_set(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    raw[0:4] = b"\x12\x34\x08\x03"
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="magic"):
        load_mnist(tmp_path)


def test_load_mnist_rejects_truncated_idx(tmp_path):
    _write_idx_set(tmp_path, compress=True)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-3]))
    with pytest.raises(ValueError):
        load_mnist(tmp_path)


def test_load_mnist_rejects_incomplete_idx_set(tmp_path):
    _write_idx_set(tmp_path, compress=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_load_mnist_keras_npz(tmp_path):
    img_tr, lab_tr = _fake_mnist(20, 3)
    img_te, lab_te = _fake_mnist(7, 4)
    np.savez(tmp_path / "mnist.npz", x_train=img_tr, y_train=lab_tr, x_test=img_te, y_test=lab_te)
    want = (img_tr, lab_tr, img_te, lab_te)
    _assert_same(load_mnist(tmp_path), want)
    _assert_same(load_mnist(tmp_path / "mnist.npz"), want)


@pytest.mark.parametrize("n", [50, 10000])
def test_load_mnist_images_labels_npz_last_20_percent_is_test(tmp_path, n):
    images, labels = _fake_mnist(n, 5)
    np.savez_compressed(tmp_path / "digits_any_name.npz", images=images, labels=labels)
    got = load_mnist(tmp_path)
    n_test = n // 5
    _assert_same(got, (images[:-n_test], labels[:-n_test], images[-n_test:], labels[-n_test:]))
    if n == 10000:
        assert (got[1].size, got[3].size) == (8000, 2000)


def test_load_mnist_rejects_mismatched_npz(tmp_path):
    images, labels = _fake_mnist(40, 6)
    path = tmp_path / "bad.npz"
    np.savez(path, images=images, labels=labels[:39])
    with pytest.raises(ValueError, match="labels"):
        load_mnist(path)
    np.savez(path, images=images.reshape(40, 28, 28)[:, :27, :], labels=labels)
    with pytest.raises(ValueError, match="28"):
        load_mnist(path)
    np.savez(path, x_train=images, y_train=labels, x_test=images, y_test=labels[:10])
    with pytest.raises(ValueError):
        load_mnist(path)
    np.savez(path, pixels=images)
    with pytest.raises(ValueError, match="images"):
        load_mnist(path)


def test_load_mnist_rejects_pickled_and_garbage_npz(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, images=np.array([None, 1], dtype=object), labels=np.zeros(2, dtype=np.uint8))
    with pytest.raises(ValueError):
        load_mnist(path)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError):
        load_mnist(garbage)


def test_load_mnist_missing_dir_mentions_layouts(tmp_path):
    with pytest.raises(ValueError, match="idx3-ubyte"):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no MNIST files"):
        load_mnist(tmp_path)


def test_download_failure_suggests_data_dir(monkeypatch):
    import sklearn.datasets

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", offline)
    with pytest.raises((RuntimeError, ValueError), match="--data-dir"):
        load_task("mnist")


# --------------------------------------------------------------------------------------------
# shipped sample
# --------------------------------------------------------------------------------------------


def test_sample_file_shipped():
    path = mnist_sample_path()
    assert path.is_file() and path.parent.name == "assets"
    assert (path.parent / "MNIST_SAMPLE_LICENSE.txt").is_file()
    with np.load(path, allow_pickle=False) as npz:
        assert npz["images"].shape == (600, 28, 28) and npz["images"].dtype == np.uint8
        assert npz["labels"].shape == (600,) and npz["labels"].dtype == np.uint8
    # The product must not read the developers' shared data folder at runtime.
    for module in Path(tasks.__file__).parent.glob("*.py"):
        assert "/work/shared" not in module.read_text(), module


def test_mnist_task_from_sample_matches_file():
    t = load_task("mnist", data_dir=mnist_sample_path(), train_size=100, test_size=50, seed=0)
    assert t.x_train.shape == (100, 784) and t.x_test.shape == (50, 784)
    assert t.y_train.shape == (100,) and t.y_test.shape == (50,)
    assert t.x_train.dtype == np.float64 and t.y_train.dtype == np.int64
    assert (t.image_shape, t.n_classes, t.n_outputs) == ((28, 28), 10, 10)
    assert t.x_train.min() >= -HP and t.x_train.max() <= HP

    with np.load(mnist_sample_path(), allow_pickle=False) as npz:
        images, labels = npz["images"], npz["labels"]
    # Undo the global pixel scaling and look every sample up in its own part of the file
    # (first 480 images train, last 120 test), checking that the label travelled with it.
    for x, y, part in (
        (t.x_train, t.y_train, slice(0, 480)),
        (t.x_test, t.y_test, slice(480, 600)),
    ):
        lookup = {}
        for img, lab in zip(images[part], labels[part], strict=True):
            lookup.setdefault(img.tobytes(), set()).add(int(lab))
        pixels = np.rint((x + HP) / math.pi * 255).astype(np.uint8)
        np.testing.assert_allclose(pixels / 255 * math.pi - HP, x, atol=1e-12)
        for row, lab in zip(pixels, y, strict=True):
            assert int(lab) in lookup[row.tobytes()]
    # Seeded: same seed, same subset; different seed, different subset.
    again = load_task("mnist", data_dir=mnist_sample_path(), train_size=100, test_size=50)
    np.testing.assert_array_equal(again.x_train, t.x_train)
    other = load_task("mnist", data_dir=mnist_sample_path(), train_size=100, seed=1)
    assert not np.array_equal(other.x_train, t.x_train)
