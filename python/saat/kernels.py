"""Low-level kernels of the Swift core, exposed for testing and benchmarking.

These entry points are strict: they never convert dtypes or copy, so a wrong dtype, shape or a
non-contiguous array raises instead of silently costing a copy.
"""
from __future__ import annotations

import numpy as np

from . import _core
from ._validate import check_array, check_bool, check_int

__all__ = ["sgemm", "conv2d", "pack_codes", "hamming_distances", "set_blas_threads", "set_threads"]


def sgemm(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None, *, trans_a: bool = False,
          trans_b: bool = False, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """``out ← alpha · op(a) @ op(b) + beta · out`` through OpenBLAS ``cblas_sgemm``.

    Parameters
    ----------
    a, b : float32 C-contiguous 2-d arrays; ``op(x)`` is ``x.T`` when ``trans_x``.
    out : float32 C-contiguous writable array of shape (m, n), allocated when None
        (then ``beta`` multiplies zeros).
    Raises TypeError for a wrong dtype, ValueError for a wrong shape, a non-contiguous input or a
    read-only ``out``.
    """
    check_array(a, "a", np.float32, ndim=2)
    check_array(b, "b", np.float32, ndim=2)
    m = a.shape[1] if trans_a else a.shape[0]
    n = b.shape[0] if trans_b else b.shape[1]
    if out is None:
        out = np.zeros((m, n), dtype=np.float32)
    _core.sgemm(a, b, out, trans_a=check_bool(trans_a, "trans_a"), trans_b=check_bool(trans_b, "trans_b"), alpha=alpha, beta=beta)
    return out


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, out: np.ndarray | None = None, *,
           stride: int = 1, padding: int = 0) -> np.ndarray:
    """``conv2d(x, weight) + bias`` (as ``torch.nn.functional.conv2d``) with the kernel the conv layers use.

    ``x`` (N, C, H, W), ``weight`` (O, C, k, k), ``bias`` (O): float32 C-contiguous; ``out``
    (N, O, OH, OW) with OH = (H + 2·padding − k) // stride + 1 is allocated when None.
    """
    check_array(x, "x", np.float32, ndim=4)
    check_array(weight, "weight", np.float32, ndim=4)
    check_array(bias, "bias", np.float32, ndim=1)
    stride = check_int(stride, "stride", lo=1, hi=1 << 16)
    padding = check_int(padding, "padding", lo=0, hi=1 << 16)
    k = weight.shape[2]
    oh = (x.shape[2] + 2 * padding - k) // stride + 1
    ow = (x.shape[3] + 2 * padding - k) // stride + 1
    if out is None:
        out = np.empty((x.shape[0], weight.shape[0], oh, ow), dtype=np.float32)
    _core.conv2d(x, weight, bias, out, stride=int(stride), padding=int(padding))
    return out


def pack_codes(codes: np.ndarray) -> np.ndarray:
    """Pack ±1 int8 codes of shape (n, K) into bits: (n, ceil(K/64)) uint64, bit j = [code_j > 0]."""
    check_array(codes, "codes", np.int8, ndim=2)
    out = np.empty((codes.shape[0], (codes.shape[1] + 63) // 64), dtype=np.uint64)
    _core.pack_codes(codes, out)
    return out


def hamming_distances(query: np.ndarray, database: np.ndarray) -> np.ndarray:
    """Hamming distances (nq, nd) int32 between ±1 int8 codes (nq, K) and (nd, K), by popcount."""
    check_array(query, "query", np.int8, ndim=2)
    check_array(database, "database", np.int8, ndim=2)
    out = np.empty((query.shape[0], database.shape[0]), dtype=np.int32)
    _core.hamming_distances(query, database, out)
    return out


def set_blas_threads(n: int) -> None:
    """Set the number of OpenBLAS threads for standalone BLAS work (``sgemm``, guide codes).

    Default: OpenBLAS's own choice. Model work (forward, backward, training, attacks) runs
    OpenBLAS on one thread and shares the cores out itself: see ``set_threads``.
    """
    _core.set_blas_threads(n)


def set_threads(n: int | None) -> None:
    """Set the number of worker threads of the network kernels (conv, pool, ReLU, linear).

    ``None`` (the default at import): all online CPUs. The batch (convolutions) or the features
    (linear layers) are split over these threads, each running single-threaded OpenBLAS; never
    OpenBLAS's own pool at the same time (that oversubscribes the cores). Outputs and input
    gradients are bitwise the same for any ``n`` (each value is computed by one thread in a GEMM
    call whose shape does not depend on ``n``); convolution weight gradients are summed per
    thread, so training is bitwise reproducible for a fixed ``n`` (and a fixed seed).
    """
    _core.set_threads(0 if n is None else check_int(n, "n", lo=1, hi=256))
