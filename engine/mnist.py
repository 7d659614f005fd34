"""MNIST files: IDX (optionally gzipped), keras ``mnist.npz``, ``images``/``labels`` npz,
or a cached OpenML download; and the small real sample shipped in ``assets/``.

Every reader validates shapes and dtypes and never unpickles.
"""

from __future__ import annotations

import gzip
import math
import zipfile
from pathlib import Path

import numpy as np

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
