"""Classification tasks for XY-model networks: data, input/target phases, predictions.

Every task is turned into *phases* (physics.md, "Inputs, outputs, cost"):

- inputs: each feature scaled to ``[-pi/2, pi/2]`` and clamped on an input node;
- targets: one output node per class, ``+pi/2`` for the true class and ``-pi/2`` otherwise
  (XOR has a single output: ``-pi/2`` when the inputs are equal, ``+pi/2`` otherwise);
- prediction: ``argmax_o sin(phi_o)`` (XOR: the sign of ``sin(phi_out)``).

Tasks: ``"xor"`` (4 patterns), ``"iris"`` (sklearn, stratified 70/30 split), ``"digits"``
(sklearn 8x8 digits, 100 train / 70 test images per class) and ``"mnist"`` (28x28, from local
files via ``data_dir`` or downloaded from OpenML and cached).
"""

from __future__ import annotations

import gzip
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "CLASSIFICATION_TASKS",
    "TaskData",
    "encode_targets",
    "load_mnist",
    "load_task",
    "mnist_sample_path",
    "predict",
]

CLASSIFICATION_TASKS = ("xor", "iris", "digits", "mnist")

_HALF_PI = 0.5 * math.pi

# P24's digits protocol: a fixed number of images per class, so every class is equally
# represented in both sets (sklearn's digits has 174..183 images per class).
_DIGITS_TRAIN_PER_CLASS = 100
_DIGITS_TEST_PER_CLASS = 70

_IRIS_TEST_FRACTION = 0.3

# Standard MNIST file names (LeCun's distribution); each may also be gzip-compressed.
_IDX_NAMES = {
    "images_train": "train-images-idx3-ubyte",
    "labels_train": "train-labels-idx1-ubyte",
    "images_test": "t10k-images-idx3-ubyte",
    "labels_test": "t10k-labels-idx1-ubyte",
}

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_DATA_DIR_HINT = (
    "Pass local MNIST files with --data-dir PATH (data_dir=PATH), where PATH is a folder "
    "holding the four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
    "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, optionally .gz), or a keras-style "
    "mnist.npz (x_train, y_train, x_test, y_test), or an .npz with 'images' and 'labels' "
    "arrays (the folder or the .npz file itself)."
)


# --------------------------------------------------------------------------------------------
# Task container
# --------------------------------------------------------------------------------------------


# eq=False: the generated __eq__/__hash__ would compare ndarrays element-wise and raise
# ("truth value of an array is ambiguous"); identity comparison is what callers need.
@dataclass(frozen=True, eq=False)
class TaskData:
    """A classification task with its train/test split, encoded as input phases.

    Attributes
    ----------
    name : str
        Task name, one of ``CLASSIFICATION_TASKS``.
    x_train : np.ndarray, shape (n_train, n_inputs), float64
        Training input phases in ``[-pi/2, pi/2]``, C-contiguous.
    y_train : np.ndarray, shape (n_train,), int64
        Training class labels in ``0 .. n_classes - 1``.
    x_test : np.ndarray, shape (n_test, n_inputs), float64
        Test input phases in ``[-pi/2, pi/2]``.
    y_test : np.ndarray, shape (n_test,), int64
        Test class labels.
    n_classes : int
        Number of classes (2 for XOR).
    image_shape : tuple of int or None
        ``(8, 8)`` for digits, ``(28, 28)`` for MNIST (rows of ``x`` are images flattened in
        row-major order), ``None`` otherwise.
    split : str
        Human-readable description of the data source and split, e.g.
        ``"stratified 105/45 (70/30 %), seed 0"``.

    Notes
    -----
    The arrays are ordinary writable arrays; treat them as read-only (they are shared, not
    copied, by whoever holds the ``TaskData``).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    image_shape: tuple[int, int] | None
    split: str

    def __post_init__(self) -> None:
        # Catch construction mistakes here rather than deep inside a numba kernel.
        for part in ("train", "test"):
            x = getattr(self, f"x_{part}")
            y = getattr(self, f"y_{part}")
            if not isinstance(x, np.ndarray) or x.ndim != 2 or x.dtype != np.float64:
                raise ValueError(f"x_{part} must be a float64 array (n, n_inputs)")
            if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.shape != (x.shape[0],):
                raise ValueError(f"y_{part} must be an int64 array of shape ({x.shape[0]},)")
            if y.size and (y.min() < 0 or y.max() >= self.n_classes):
                raise ValueError(f"y_{part} labels must lie in 0..{self.n_classes - 1}")
        if self.x_train.shape[1] != self.x_test.shape[1]:
            raise ValueError(
                f"x_train has {self.x_train.shape[1]} inputs but x_test has {self.x_test.shape[1]}"
            )
        if self.image_shape is not None and math.prod(self.image_shape) != self.n_inputs:
            raise ValueError(
                f"image_shape {self.image_shape} does not match n_inputs={self.n_inputs}"
            )

    @property
    def n_inputs(self) -> int:
        """Number of input nodes (features per sample)."""
        return int(self.x_train.shape[1])

    @property
    def n_outputs(self) -> int:
        """Number of output nodes: 1 for XOR (sign readout), else one per class."""
        return 1 if self.name == "xor" else int(self.n_classes)

    def targets(self, y: np.ndarray) -> np.ndarray:
        """Target output phases for labels ``y``.

        Parameters
        ----------
        y : array_like of int, shape (n,)
            Class labels.

        Returns
        -------
        np.ndarray, shape (n, n_outputs), float64
            ``encode_targets(y, self.n_outputs)``.
        """
        return encode_targets(y, self.n_outputs)


# --------------------------------------------------------------------------------------------
# Targets and predictions
# --------------------------------------------------------------------------------------------


def encode_targets(y: np.ndarray, n_outputs: int) -> np.ndarray:
    """Encode class labels as target output phases.

    Parameters
    ----------
    y : array_like of int, shape (n,)
        Class labels; ``0`` or ``1`` when ``n_outputs == 1``, else ``0 .. n_outputs - 1``.
    n_outputs : int
        Number of output nodes.

    Returns
    -------
    np.ndarray, shape (n, n_outputs), float64
        For one output (XOR): ``-pi/2`` for class 0 (inputs equal), ``+pi/2`` for class 1.
        Otherwise ``+pi/2`` on the true class's output and ``-pi/2`` on all others.

    Raises
    ------
    ValueError
        If ``y`` is not 1-D integer labels in the allowed range or ``n_outputs < 1``.
    """
    if isinstance(n_outputs, bool) or not isinstance(n_outputs, (int, np.integer)):
        raise ValueError(f"n_outputs must be a positive int, got {n_outputs!r}")
    n_outputs = int(n_outputs)
    if n_outputs < 1:
        raise ValueError(f"n_outputs must be >= 1, got {n_outputs}")
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ValueError(f"y must be 1-D (n,), got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        # Float labels usually mean a caller passed phases or one-hot rows by mistake.
        raise ValueError(f"y must hold integer class labels, got dtype {labels.dtype}")
    labels = labels.astype(np.int64, copy=False)
    n_classes = 2 if n_outputs == 1 else n_outputs
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"y labels must lie in 0..{n_classes - 1} for n_outputs={n_outputs}, "
            f"got range {labels.min()}..{labels.max()}"
        )
    if n_outputs == 1:
        return np.where(labels == 1, _HALF_PI, -_HALF_PI).astype(np.float64)[:, None]
    out = np.full((labels.size, n_outputs), -_HALF_PI, dtype=np.float64)
    out[np.arange(labels.size), labels] = _HALF_PI
    return out


def predict(phi_out: np.ndarray) -> np.ndarray:
    """Predicted class labels from output phases.

    Parameters
    ----------
    phi_out : array_like of float, shape (n, n_outputs)
        Output-node phases (any branch; only ``sin`` is used, so wrapping does not matter).

    Returns
    -------
    np.ndarray, shape (n,), int64
        With several outputs, ``argmax_o sin(phi_o)`` (ties go to the lowest index). With one
        output (XOR), ``1`` if ``sin(phi) > 0`` else ``0``.

    Raises
    ------
    ValueError
        If ``phi_out`` is not 2-D with at least one output column.
    """
    phi = np.asarray(phi_out, dtype=np.float64)
    # A 1-D vector is ambiguous (n samples of one output, or one sample of n outputs).
    if phi.ndim != 2 or phi.shape[1] < 1:
        raise ValueError(f"phi_out must have shape (n, n_outputs), got {phi.shape}")
    s = np.sin(phi)
    if phi.shape[1] == 1:
        return (s[:, 0] > 0.0).astype(np.int64)
    return np.argmax(s, axis=1).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Task loading
# --------------------------------------------------------------------------------------------


def load_task(
    name: str,
    *,
    seed: int = 0,
    data_dir: str | Path | None = None,
    train_size: int | None = None,
    test_size: int | None = None,
) -> TaskData:
    """Load a classification task as input phases with its train/test split.

    Parameters
    ----------
    name : str
        One of ``CLASSIFICATION_TASKS``: ``"xor"``, ``"iris"``, ``"digits"``, ``"mnist"``
        (case-insensitive).
    seed : int, default 0
        Seed of the split (iris, digits) and of the shuffle/subsets (digits, mnist). The same
        seed always gives the same split.
    data_dir : str or Path, optional
        MNIST only: a folder or ``.npz`` file understood by :func:`load_mnist`. ``None``
        downloads MNIST from OpenML (cached). Ignored by the other tasks, whose data ship
        with scikit-learn.
    train_size, test_size : int, optional
        Use only this many training / test samples. Iris and digits take stratified subsets
        (at least ``n_classes`` samples); MNIST takes the first N of each split after a
        seeded shuffle. XOR always uses its 4 patterns (only ``None`` or 4 allowed).

    Returns
    -------
    TaskData
        ``x_*`` float64 (n, n_inputs) in ``[-pi/2, pi/2]``, ``y_*`` int64 (n,).

        - xor: 4 patterns ``(-,-), (-,+), (+,-), (+,+)`` of ``+-pi/2``, labels 0, 1, 1, 0;
          train = test.
        - iris: 4 features, stratified 105/45 split (``random_state=seed``); each feature
          min-max scaled with the training set's min/max, test values clipped to that range.
        - digits: 64 pixels (8x8), 100 train and 70 test images per class drawn with a seeded
          generator; pixels scaled globally from ``[0, 16]``.
        - mnist: 784 pixels (28x28), scaled globally from ``[0, 255]``.

    Raises
    ------
    ValueError
        For an unknown ``name``, a bad ``seed`` or out-of-range sizes; the message names the
        field, the value and the allowed values. MNIST loading errors (bad files, no network)
        are reported as ``ValueError`` / ``RuntimeError`` by :func:`load_mnist`.
    """
    if not isinstance(name, str) or name.strip().lower() not in CLASSIFICATION_TASKS:
        raise ValueError(
            f"name={name!r} is not a known task; allowed: {', '.join(CLASSIFICATION_TASKS)}"
        )
    name = name.strip().lower()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        # train_test_split's random_state must fit in 32 bits; keep one rule for all tasks.
        raise ValueError(f"seed={seed!r} is invalid; allowed: an int in 0..{2**32 - 1}")
    seed = int(seed)
    for field, value in (("train_size", train_size), ("test_size", test_size)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, np.integer))
        ):
            raise ValueError(f"{field}={value!r} is invalid; allowed: None or a positive int")

    if name == "xor":
        return _load_xor(train_size, test_size)
    if name == "iris":
        return _load_iris(seed, train_size, test_size)
    if name == "digits":
        return _load_digits(seed, train_size, test_size)
    return _load_mnist_task(seed, data_dir, train_size, test_size)


def _check_size(field: str, value: int | None, task: str, low: int, high: int) -> int:
    """Validate a requested subset size against ``low..high``; ``None`` means ``high``."""
    if value is None:
        return high
    value = int(value)
    if not low <= value <= high:
        allowed = f"{low}" if low == high else f"{low}..{high}"
        raise ValueError(
            f"{field}={value} is out of range for task {task!r}; allowed: None or {allowed}"
        )
    return value


def _stratified_subset(y: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of a stratified subset of ``size`` samples (all indices if ``size == len(y)``).

    Each class gets its proportional share of ``size`` (largest-remainder rounding, so the
    shares add up exactly), drawn without replacement by a generator seeded with ``seed``.
    Done by hand rather than with ``train_test_split`` because that also demands at least
    one sample per class in the *discarded* part, which rejects sizes close to ``len(y)``.

    Parameters
    ----------
    y : np.ndarray, shape (n,), int
        Labels to stratify on.
    size : int
        Subset size, ``1 <= size <= n``.
    seed : int
        Seed of the draw.

    Returns
    -------
    np.ndarray, shape (size,), int64
        Sorted indices into ``y`` (sorted so the subset keeps the parent's order).
    """
    if size == y.size:
        return np.arange(y.size, dtype=np.int64)
    classes, counts = np.unique(y, return_counts=True)
    quota = size * counts / y.size
    share = np.floor(quota).astype(np.int64)
    # Hand the leftover samples to the classes with the largest rounding loss (stable order).
    order = np.argsort(-(quota - share), kind="stable")
    share[order[: size - int(share.sum())]] += 1
    rng = np.random.default_rng(seed)
    picked = [
        rng.choice(np.flatnonzero(y == c), size=k, replace=False)
        for c, k in zip(classes, share, strict=True)
    ]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def _subset_note(n_train: int, n_test: int, full_train: int, full_test: int, how: str) -> str:
    """Suffix for ``TaskData.split`` describing a subset, empty when the full split is used."""
    if n_train == full_train and n_test == full_test:
        return ""
    return f"; {how} {n_train}/{n_test} of {full_train}/{full_test}"


def _load_xor(train_size: int | None, test_size: int | None) -> TaskData:
    _check_size("train_size", train_size, "xor", 4, 4)
    _check_size("test_size", test_size, "xor", 4, 4)
    x = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]], dtype=np.float64) * _HALF_PI
    y = np.array([0, 1, 1, 0], dtype=np.int64)
    # Separate copies so a caller mutating the training set cannot alter the test set.
    return TaskData(
        name="xor",
        x_train=x.copy(),
        y_train=y.copy(),
        x_test=x.copy(),
        y_test=y.copy(),
        n_classes=2,
        image_shape=None,
        split="all 4 patterns, train = test",
    )


def _load_iris(seed: int, train_size: int | None, test_size: int | None) -> TaskData:
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    bunch = load_iris()
    x_all = np.asarray(bunch.data, dtype=np.float64)
    y_all = np.asarray(bunch.target, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x_all, y_all, test_size=_IRIS_TEST_FRACTION, stratify=y_all, random_state=seed
    )
    full_train, full_test = y_tr.size, y_te.size
    n_train = _check_size("train_size", train_size, "iris", 3, full_train)
    n_test = _check_size("test_size", test_size, "iris", 3, full_test)
    i_tr = _stratified_subset(y_tr, n_train, seed)
    i_te = _stratified_subset(y_te, n_test, seed)
    x_tr, y_tr, x_te, y_te = x_tr[i_tr], y_tr[i_tr], x_te[i_te], y_te[i_te]

    # Scale with the statistics of the samples actually trained on, so no test information
    # leaks into the inputs; test values outside that range are clipped onto the bounds.
    lo = x_tr.min(axis=0)
    hi = x_tr.max(axis=0)
    x_tr = _minmax_to_phase(x_tr, lo, hi)
    x_te = _minmax_to_phase(x_te, lo, hi)
    split = (
        f"stratified {full_train}/{full_test} (70/30 %), seed {seed}; per-feature min-max "
        "from train"
    ) + _subset_note(n_train, n_test, full_train, full_test, "stratified subset")
    return TaskData(
        name="iris",
        x_train=np.ascontiguousarray(x_tr),
        y_train=np.ascontiguousarray(y_tr),
        x_test=np.ascontiguousarray(x_te),
        y_test=np.ascontiguousarray(y_te),
        n_classes=3,
        image_shape=None,
        split=split,
    )


def _minmax_to_phase(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Map ``x`` (n, d) linearly from per-feature ``[lo, hi]`` (d,) to ``[-pi/2, pi/2]``.

    Values outside ``[lo, hi]`` are clipped; a constant feature (``hi == lo``) maps to 0,
    the middle of the range, since it carries no information.
    """
    span = hi - lo
    safe = np.where(span > 0.0, span, 1.0)
    u = np.clip((x - lo) / safe, 0.0, 1.0)
    u = np.where(span > 0.0, u, 0.5)
    return (u * math.pi - _HALF_PI).astype(np.float64)


def _pixels_to_phase(pixels: np.ndarray, max_value: float) -> np.ndarray:
    """Map pixels in ``[0, max_value]`` globally to ``[-pi/2, pi/2]`` (float64, same shape).

    Global (not per-pixel) scaling: many pixels are constant over the data set (always 0
    at the border), and per-feature min-max would blow up noise or divide by zero there.
    """
    u = np.asarray(pixels, dtype=np.float64) / float(max_value)
    return np.clip(u, 0.0, 1.0) * math.pi - _HALF_PI


def _load_digits(seed: int, train_size: int | None, test_size: int | None) -> TaskData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pix = np.asarray(bunch.data, dtype=np.float64)  # (1797, 64), values 0..16
    y_all = np.asarray(bunch.target, dtype=np.int64)
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in range(10):
        members = rng.permutation(np.flatnonzero(y_all == c))
        train_idx.append(members[:_DIGITS_TRAIN_PER_CLASS])
        test_idx.append(
            members[_DIGITS_TRAIN_PER_CLASS : _DIGITS_TRAIN_PER_CLASS + _DIGITS_TEST_PER_CLASS]
        )
    # Shuffle across classes so that consecutive samples (minibatches taken in order) are
    # not all from one class.
    i_tr = rng.permutation(np.concatenate(train_idx))
    i_te = rng.permutation(np.concatenate(test_idx))
    full_train, full_test = i_tr.size, i_te.size
    n_train = _check_size("train_size", train_size, "digits", 10, full_train)
    n_test = _check_size("test_size", test_size, "digits", 10, full_test)
    i_tr = i_tr[_stratified_subset(y_all[i_tr], n_train, seed)]
    i_te = i_te[_stratified_subset(y_all[i_te], n_test, seed)]
    split = (
        f"per class {_DIGITS_TRAIN_PER_CLASS}/{_DIGITS_TEST_PER_CLASS} "
        f"({full_train}/{full_test}), seed {seed}; pixels 0..16 scaled globally"
    ) + _subset_note(n_train, n_test, full_train, full_test, "stratified subset")
    return TaskData(
        name="digits",
        x_train=np.ascontiguousarray(_pixels_to_phase(pix[i_tr], 16.0)),
        y_train=np.ascontiguousarray(y_all[i_tr]),
        x_test=np.ascontiguousarray(_pixels_to_phase(pix[i_te], 16.0)),
        y_test=np.ascontiguousarray(y_all[i_te]),
        n_classes=10,
        image_shape=(8, 8),
        split=split,
    )


def _load_mnist_task(
    seed: int, data_dir: str | Path | None, train_size: int | None, test_size: int | None
) -> TaskData:
    img_tr, lab_tr, img_te, lab_te, source = _read_mnist(data_dir, None)
    full_train, full_test = lab_tr.size, lab_te.size
    n_train = _check_size("train_size", train_size, "mnist", 1, full_train)
    n_test = _check_size("test_size", test_size, "mnist", 1, full_test)
    # Shuffle before taking the first N: file order may be sorted or biased (the test split
    # of the original files is roughly ordered by writer), so a prefix alone would not be a
    # fair sample. Train and test use one generator, drawn in a fixed order.
    rng = np.random.default_rng(seed)
    i_tr = rng.permutation(full_train)[:n_train]
    i_te = rng.permutation(full_test)[:n_test]
    split = f"{source}, {full_train}/{full_test}; shuffled with seed {seed}"
    if n_train != full_train or n_test != full_test:
        split += f", first {n_train}/{n_test}"
    return TaskData(
        name="mnist",
        x_train=_pixels_to_phase(img_tr[i_tr].reshape(n_train, -1), 255.0),
        y_train=lab_tr[i_tr].astype(np.int64),
        x_test=_pixels_to_phase(img_te[i_te].reshape(n_test, -1), 255.0),
        y_test=lab_te[i_te].astype(np.int64),
        n_classes=10,
        image_shape=(28, 28),
        split=split,
    )


# --------------------------------------------------------------------------------------------
# MNIST files
# --------------------------------------------------------------------------------------------


def mnist_sample_path() -> Path:
    """Path of the small MNIST sample shipped with the repository.

    Returns
    -------
    Path
        ``<repo>/assets/mnist_sample.npz``: ``images`` uint8 (600, 28, 28) and ``labels``
        uint8 (600,), real MNIST digits (CC BY-SA 3.0, see ``MNIST_SAMPLE_LICENSE.txt``).
        Loaded through :func:`load_mnist` it splits 480 train / 120 test.
    """
    return Path(__file__).resolve().parents[1] / "assets" / "mnist_sample.npz"


def load_mnist(
    data_dir: str | Path | None = None, *, cache_dir: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load MNIST images and labels, from local files or from OpenML.

    Parameters
    ----------
    data_dir : str or Path, optional
        A folder, or the path of an ``.npz`` file. A folder is searched, in this order, for

        (a) the four IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
            ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``);
            the standard 60,000/10,000 split;
        (b) ``mnist.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (keras
            layout);
        (c) a single other ``.npz`` with ``images`` (n, 28, 28) and ``labels`` (n,) arrays.
            It has no split of its own: the last 20 % of the file (``n // 5`` images, e.g.
            2,000 of 10,000, i.e. 8,000/2,000) is the test set and the rest the training set.

        An ``.npz`` file given directly may use either layout (b) or (c). ``None`` downloads
        ``mnist_784`` from OpenML through scikit-learn (about 55 MB, cached after the first
        call) and uses the standard split: the first 60,000 images train, the last 10,000
        test.
    cache_dir : str or Path, optional
        Download cache (scikit-learn's ``data_home``); default ``~/scikit_learn_data``.
        Only used when ``data_dir`` is ``None``.

    Returns
    -------
    images_train : np.ndarray, shape (n_train, 28, 28), uint8
        Pixels 0..255, 0 = background.
    labels_train : np.ndarray, shape (n_train,), uint8
        Digit classes 0..9.
    images_test : np.ndarray, shape (n_test, 28, 28), uint8
    labels_test : np.ndarray, shape (n_test,), uint8

    Raises
    ------
    ValueError
        If ``data_dir`` does not exist, holds none of the layouts above (or only part of one),
        or a file is corrupt or inconsistent (bad IDX magic number, truncated data, wrong
        shapes or dtypes, labels outside 0..9, image/label counts that differ). Files are
        read with ``allow_pickle=False``.
    RuntimeError
        If ``data_dir`` is ``None`` and the download fails; the message explains how to pass
        local files instead (``--data-dir``).
    """
    img_tr, lab_tr, img_te, lab_te, _ = _read_mnist(data_dir, cache_dir)
    return img_tr, lab_tr, img_te, lab_te


def _read_mnist(
    data_dir: str | Path | None, cache_dir: str | Path | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """:func:`load_mnist` plus a short description of where the data came from."""
    if data_dir is None:
        return (*_fetch_openml_mnist(cache_dir), "OpenML mnist_784 standard split")
    path = Path(data_dir).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise ValueError(f"data_dir={str(path)!r} is a file but not an .npz; {_DATA_DIR_HINT}")
        arrays, layout = _read_mnist_npz(path)
        return (*arrays, f"{path.name} ({layout})")
    if not path.is_dir():
        raise ValueError(f"data_dir={str(path)!r} does not exist. {_DATA_DIR_HINT}")

    found = {key: _find_idx(path, base) for key, base in _IDX_NAMES.items()}
    if all(found.values()):
        arrays = (
            _read_idx(found["images_train"]),
            _read_idx(found["labels_train"]),
            _read_idx(found["images_test"]),
            _read_idx(found["labels_test"]),
        )
        return (*_validate_split(*arrays, origin=f"IDX files in {path}"), "MNIST IDX files")
    if any(found.values()):
        # Part of the IDX set is there: silently falling back to an .npz would hide the error.
        missing = [_IDX_NAMES[k] for k, v in found.items() if v is None]
        raise ValueError(
            f"data_dir={str(path)!r} holds some MNIST IDX files but is missing "
            f"{', '.join(missing)} (plain or .gz)"
        )
    keras = path / "mnist.npz"
    if keras.is_file():
        arrays, layout = _read_mnist_npz(keras)
        return (*arrays, f"mnist.npz ({layout})")
    npz_files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".npz")
    if len(npz_files) == 1:
        arrays, layout = _read_mnist_npz(npz_files[0])
        return (*arrays, f"{npz_files[0].name} ({layout})")
    if len(npz_files) > 1:
        names = ", ".join(p.name for p in npz_files)
        raise ValueError(
            f"data_dir={str(path)!r} holds several .npz files ({names}) and no mnist.npz; "
            "pass the path of the one to use"
        )
    raise ValueError(f"data_dir={str(path)!r} holds no MNIST files. {_DATA_DIR_HINT}")


def _find_idx(folder: Path, base: str) -> Path | None:
    """Locate an IDX file by its standard name, plain or ``.gz``.

    Also accepts the ``train-images.idx3-ubyte`` spelling some mirrors use.
    """
    dotted = base.replace("-idx", ".idx")
    for name in (base, base + ".gz", dotted, dotted + ".gz"):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (optionally gzip-compressed).

    IDX layout: 2 zero bytes, a type code byte, a byte with the number of dimensions ``d``,
    ``d`` big-endian uint32 sizes, then the data in C order, big-endian.

    Parameters
    ----------
    path : Path
        File to read; gzip is detected from its magic bytes, not only the ``.gz`` suffix.

    Returns
    -------
    np.ndarray, shape given by the header, native byte order

    Raises
    ------
    ValueError
        On a bad magic number, an unknown type code, or a size mismatch.
    """
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"cannot read IDX file {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path} is not an IDX file: bad magic number {raw[:4].hex() or '(empty)'} "
            "(expected 0000 08 03 for images or 0000 08 01 for labels)"
        )
    dtype = _IDX_DTYPES[raw[2]]
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ValueError(f"{path}: truncated or invalid IDX header (ndim={ndim})")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: IDX header announces shape {dims} ({expected} bytes of data) but the "
            f"file holds {len(raw) - header} bytes"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def _read_mnist_npz(
    path: Path,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], str]:
    """Read an ``.npz`` in keras layout or ``images``/``labels`` layout; return arrays, layout."""
    keras_keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            if set(keras_keys) <= keys:
                arrays = tuple(np.asarray(npz[k]) for k in keras_keys)
                layout = "keras layout"
            elif {"images", "labels"} <= keys:
                images = np.asarray(npz["images"])
                labels = np.asarray(npz["labels"])
                layout = None
            else:
                layout = "unknown"
    # np.load raises ValueError for object arrays (allow_pickle=False) and for content that
    # is no .npy/.npz at all; zip and I/O errors mean a damaged or truncated file.
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"cannot read {path} as an .npz of MNIST arrays: {exc}") from exc
    if layout == "unknown":
        raise ValueError(
            f"{path} has arrays {sorted(keys)}; expected x_train, y_train, x_test, y_test "
            "(keras mnist.npz) or images, labels"
        )

    if layout is not None:
        return _validate_split(*arrays, origin=str(path)), layout

    images, labels = _validate_pair(images, labels, f"{path} images/labels")
    n = labels.size
    n_test = n // 5
    if n_test < 1 or n - n_test < 1:
        raise ValueError(f"{path} holds {n} images; need at least 5 to split 80/20")
    split = (
        images[: n - n_test],
        labels[: n - n_test],
        images[n - n_test :],
        labels[n - n_test :],
    )
    return split, "images/labels, last 20 % as test"


def _validate_split(
    img_tr: np.ndarray,
    lab_tr: np.ndarray,
    img_te: np.ndarray,
    lab_te: np.ndarray,
    *,
    origin: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate and normalise a train/test pair of MNIST arrays (see :func:`_validate_pair`)."""
    img_tr, lab_tr = _validate_pair(img_tr, lab_tr, f"{origin} (train)")
    img_te, lab_te = _validate_pair(img_te, lab_te, f"{origin} (test)")
    return img_tr, lab_tr, img_te, lab_te


def _validate_pair(
    images: np.ndarray, labels: np.ndarray, origin: str
) -> tuple[np.ndarray, np.ndarray]:
    """Check MNIST images/labels and convert them to uint8 (n, 28, 28) / uint8 (n,).

    ``images`` may be (n, 28, 28) or flattened (n, 784), of any integer dtype with values in
    0..255. Floats are rejected: their scale (0..1 or 0..255) would have to be guessed.
    """
    if images.ndim == 2 and images.shape[1] == 784:
        images = images.reshape(-1, 28, 28)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{origin}: images must have shape (n, 28, 28), got {images.shape}")
    if not np.issubdtype(images.dtype, np.integer):
        raise ValueError(f"{origin}: images must be uint8 pixels 0..255, got {images.dtype}")
    if images.size and (images.min() < 0 or images.max() > 255):
        raise ValueError(f"{origin}: pixel values must lie in 0..255")
    if labels.ndim != 1:
        raise ValueError(f"{origin}: labels must be 1-D (n,), got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{origin}: labels must be integers 0..9, got {labels.dtype}")
    if labels.size != images.shape[0]:
        raise ValueError(
            f"{origin}: {images.shape[0]} images but {labels.size} labels (counts must match)"
        )
    if images.shape[0] == 0:
        raise ValueError(f"{origin}: no images")
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{origin}: labels must lie in 0..9, got {labels.min()}..{labels.max()}")
    return (
        np.ascontiguousarray(images, dtype=np.uint8),
        np.ascontiguousarray(labels, dtype=np.uint8),
    )


def _fetch_openml_mnist(
    cache_dir: str | Path | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Download (or read from the cache) ``mnist_784`` from OpenML; standard 60k/10k split."""
    from sklearn.datasets import fetch_openml

    try:
        # liac-arff parser: returns numpy arrays without needing pandas.
        bunch = fetch_openml(
            "mnist_784",
            version=1,
            as_frame=False,
            data_home=None if cache_dir is None else str(cache_dir),
            parser="liac-arff",
        )
    except Exception as exc:  # network, HTTP, cache and parse errors all mean "no data"
        raise RuntimeError(
            f"could not download MNIST (mnist_784) from OpenML: {type(exc).__name__}: {exc}. "
            f"{_DATA_DIR_HINT} Raw files: http://yann.lecun.com/exdb/mnist/ or a mirror."
        ) from exc
    data = np.asarray(bunch.data)
    target = np.asarray(bunch.target)
    if data.shape != (70000, 784) or target.shape != (70000,):
        raise RuntimeError(
            f"OpenML mnist_784 has unexpected shapes {data.shape}, {target.shape}; "
            f"expected (70000, 784), (70000,). {_DATA_DIR_HINT}"
        )
    # OpenML stores pixels as numbers (float) and labels as strings '0'..'9'.
    images = np.clip(np.rint(data.astype(np.float64)), 0, 255).astype(np.uint8)
    labels = target.astype(np.int64)
    return _validate_split(
        images[:60000], labels[:60000], images[60000:], labels[60000:], origin="OpenML mnist_784"
    )
