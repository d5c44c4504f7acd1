"""Argument checks shared by the Python API: every message names the argument and what was expected."""
from __future__ import annotations

import numbers

import numpy as np


def check_array(x, name: str, dtype=np.float32, ndim: int | None = None, shape=None,
                writable: bool = False) -> np.ndarray:
    """Return ``x`` unchanged if it is a C-contiguous ndarray of ``dtype`` (and ndim/shape);
    otherwise raise TypeError/ValueError naming ``name``. No conversion: for strict entry points."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"argument '{name}': expected a numpy.ndarray of {np.dtype(dtype).name}, got {type(x).__name__}")
    if x.dtype != np.dtype(dtype):
        raise TypeError(f"argument '{name}': expected dtype {np.dtype(dtype).name}, got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"argument '{name}': expected a {ndim}-d array, got shape {x.shape}")
    if shape is not None:
        if len(shape) != x.ndim or any(s is not None and s != d for s, d in zip(shape, x.shape)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"argument '{name}': expected shape {want}, got {x.shape}")
    if not x.flags.c_contiguous:
        raise ValueError(f"argument '{name}': expected a C-contiguous array (use numpy.ascontiguousarray)")
    if writable and not x.flags.writeable:
        raise ValueError(f"argument '{name}': output array is read-only")
    return x


def check_int(v, name: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"argument '{name}': expected an int, got {type(v).__name__}")
    v = int(v)
    if lo is not None and v < lo:
        raise ValueError(f"argument '{name}': expected an int >= {lo}, got {v}")
    if hi is not None and v > hi:
        raise ValueError(f"argument '{name}': expected an int <= {hi}, got {v}")
    return v


def check_float(v, name: str, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"argument '{name}': expected a float, got {type(v).__name__}")
    v = float(v)
    if not np.isfinite(v):
        raise ValueError(f"argument '{name}': expected a finite number, got {v}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ValueError(f"argument '{name}': expected a value {'>' if lo_open else '>='} {lo}, got {v}")
    if hi is not None and v > hi:
        raise ValueError(f"argument '{name}': expected a value <= {hi}, got {v}")
    return v
