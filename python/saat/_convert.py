"""Input conversion for the public API: numpy-like inputs become the arrays the core expects.

Accepted image inputs: numpy arrays (or anything ``numpy.asarray`` understands, e.g. CPU torch
tensors) of float32, float64 or uint8, in C or Fortran order. uint8 is scaled by 1/255; floats must
already be in [0, 1]. A conversion (dtype or memory order) costs one copy of the batch; C-contiguous
float32 input is used without a copy.
"""
from __future__ import annotations

import numpy as np

_FLOAT_KINDS = (np.float32, np.float64, np.float16)


def as_images(x, name: str, item_shape) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 array of shape (N, *item_shape).

    Conversion only (dtype, memory order, uint8 scaling, shape): the core checks the pixel values
    (finite, in [0, 1]) where the images enter it, once."""
    if isinstance(x, (list, tuple)) and len(x) == 0:
        x = np.zeros((0, *item_shape), np.float32)
    try:
        arr = np.asarray(x)
    except Exception as e:  # e.g. a CUDA tensor
        raise TypeError(f"argument '{name}': expected an array of images, got {type(x).__name__} ({e})") from None
    want = "(N, " + ", ".join(map(str, item_shape)) + ")"
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) * np.float32(1 / 255)
    elif arr.dtype.type in _FLOAT_KINDS:
        pass
    else:
        raise TypeError(f"argument '{name}': expected images of dtype float32, float64 or uint8, got {arr.dtype}")
    if arr.ndim == len(item_shape) and tuple(arr.shape) == tuple(item_shape):
        raise ValueError(f"argument '{name}': expected a batch of shape {want}, got a single image of shape "
                         f"{arr.shape} (add a leading batch axis: x[None])")
    if arr.ndim != len(item_shape) + 1 or tuple(arr.shape[1:]) != tuple(item_shape):
        raise ValueError(f"argument '{name}': expected shape {want}, got {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def as_float_array(x, name: str) -> np.ndarray:
    """Any real numeric array-like (numpy, CPU torch tensor, nested lists) as a C-contiguous float32
    array of the same shape, for the core, which checks shapes and values; TypeError naming
    ``name`` for anything else."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(as_real_array(x, name, dtype=None), dtype=np.float32)


def as_real_array(x, name: str, dtype=np.float64) -> np.ndarray:
    """``numpy.asarray(x, dtype)`` for real numeric input; TypeError naming ``name`` otherwise
    (objects, strings, bytes, complex numbers)."""
    try:
        arr = np.asarray(x)
    except Exception as e:
        raise TypeError(f"argument '{name}': expected a numeric array, got {type(x).__name__} ({e})") from None
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise TypeError(f"argument '{name}': expected a real numeric array, got {type(x).__name__} of dtype {arr.dtype}")
    return arr if dtype is None else arr.astype(dtype, copy=False)


def as_float_matrix(x, name: str, rows: int | None = None, cols: int | None = None) -> np.ndarray:
    """A finite 2-d float32 C-contiguous array, converted from any real dtype."""
    arr = as_real_array(x, name, dtype=None)
    if arr.ndim != 2:
        raise ValueError(f"argument '{name}': expected a 2-d array, got shape {arr.shape}")
    if rows is not None and arr.shape[0] != rows:
        raise ValueError(f"argument '{name}': expected {rows} rows, got shape {arr.shape}")
    if cols is not None and arr.shape[1] != cols:
        raise ValueError(f"argument '{name}': expected {cols} columns, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.size and not np.isfinite(arr).all():
        raise ValueError(f"argument '{name}': expected finite values, found NaN or inf")
    return arr


def as_labels(y, name: str, rows: int | None = None, classes: int | None = None) -> np.ndarray:
    """Multi-hot labels as float32 (N, C) with values in {0, 1}."""
    arr = as_float_matrix(y, name, rows, classes)
    if arr.size and not np.isin(arr, (0.0, 1.0)).all():
        bad = arr[~np.isin(arr, (0.0, 1.0))][0]
        raise ValueError(f"argument '{name}': expected multi-hot 0/1 labels, found value {bad}")
    return arr


def is_batch_iterable(x) -> bool:
    """True for an iterable of batches (a generator, a torch DataLoader, a list of arrays), False
    for an array-like (numpy array, torch tensor, anything exposing ``__array__``)."""
    if isinstance(x, (np.ndarray, str, bytes, memoryview)) or hasattr(x, "__array__") \
            or hasattr(x, "__array_interface__"):
        return False
    if isinstance(x, (list, tuple)):
        # a list of batches (each a tuple, or a 4-d array); a nested list of pixels is array-like
        if len(x) == 0:
            return False
        first = x[0]
        return isinstance(first, (tuple, list)) and len(first) in (2, 3) and np.ndim(first[0]) == 4 \
            or (hasattr(first, "__array__") and np.ndim(first) == 4)
    return hasattr(x, "__iter__")


def collect_batches(batches, name: str, item_shape, *, with_labels: bool):
    """Concatenate an iterable of batches into arrays, once (memory: the whole set).

    Each batch is ``images`` or a tuple/list ``(images, labels)`` or ``(images, labels, index)`` as
    a PyTorch ``DataLoader`` over a hashing dataset yields; tensors are converted with
    ``numpy.asarray``. With an ``index`` (the items' positions in the dataset), the result is put
    back in dataset order so every item keeps its identity (the training losses' memory rows).
    Returns ``(images, labels or None)``.
    """
    imgs, labs, idxs = [], [], []
    for i, b in enumerate(batches):
        if isinstance(b, (tuple, list)):
            if not 1 <= len(b) <= 3:
                raise ValueError(f"argument '{name}': batch {i} has {len(b)} parts; expected images, "
                                 "(images, labels) or (images, labels, index)")
            imgs.append(as_images(b[0], f"{name}[{i}].images", item_shape))
            if len(b) >= 2:
                labs.append(np.asarray(b[1]))
            if len(b) == 3:
                idxs.append(np.asarray(b[2]).reshape(-1))
        else:
            imgs.append(as_images(b, f"{name}[{i}]", item_shape))
    if not imgs:
        raise ValueError(f"argument '{name}': the iterable of batches yielded no batch")
    x = np.concatenate(imgs)
    y = None
    if with_labels:
        if len(labs) != len(imgs):
            raise ValueError(f"argument '{name}': every batch must be (images, labels[, index]) for training")
        y = as_labels(np.concatenate([l.reshape(l.shape[0], -1) for l in labs]), f"{name}.labels", rows=x.shape[0])
    if idxs:
        if len(idxs) != len(imgs):
            raise ValueError(f"argument '{name}': either every batch carries an index or none does")
        idx = np.concatenate(idxs).astype(np.int64)
        if sorted(idx.tolist()) != list(range(x.shape[0])):
            raise ValueError(f"argument '{name}': batch indices must be a permutation of 0..{x.shape[0] - 1}")
        order = np.argsort(idx)
        x = np.ascontiguousarray(x[order])
        y = None if y is None else np.ascontiguousarray(y[order])
    return x, y
