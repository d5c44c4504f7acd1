"""Resampling of image stacks: exact area averaging and bilinear interpolation, as separable matrix
products."""
from __future__ import annotations

import numpy as np

from .._validate import check_int


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
