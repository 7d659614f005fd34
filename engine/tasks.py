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

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .mnist import _read_mnist, load_mnist, mnist_sample_path

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


