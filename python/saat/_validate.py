"""Argument checks shared by the Python API: every message names the argument and what was expected.

Reliability contract (issue 9): every public function and ``saat._core`` entry point answers a
bad argument with ``TypeError`` (wrong type or dtype) or ``ValueError`` (wrong ndim, shape, batch
size, non-contiguous or read-only buffer, out-of-range value) whose message starts with
``argument '<name>'`` -- never a crash or a hang. tests/test_fuzz_core.py and test_fuzz_api.py
fuzz this; tests/test_reliability.py covers leaks, threads, Ctrl-C and checkpoints.

Where values are checked: once. The Python layer converts (dtype, memory order, uint8 scaling,
batch iterables) and checks only what it computes with itself; image values are checked where
they enter the core (the bridge); hyper-parameters by the core's schema of each algorithm
(``saat._core.schemas()``); codes and labels of the attacks, codes and training by the core.

NaN policy:

* Inputs: NaN or ±inf anywhere in images, labels, codes, ``grad_out``, loss memory, state dicts
  or float hyper-parameters raise ``ValueError`` naming the argument (so ``saat._core`` called
  directly is just as safe). Nothing is silently propagated or clipped.
* Weights: ``HashingModel.load_state_dict`` (and ``HashingModel.load``, checkpoint resume)
  reject non-finite tensors with ``ValueError`` before changing anything: the model keeps its
  previous weights.
* Training: when a batch's loss becomes NaN/inf (a learning rate too large), training stops with
  ``saat.TrainingDiverged`` (a ``ValueError`` whose message names ``lr``). The optimiser step of
  that batch has been applied, so the weights may be non-finite; the core then refuses
  ``forward``, ``encode``, ``input_gradient`` and every attack on such a model with a
  ``ValueError`` naming ``model`` instead of returning NaN or arbitrary codes. Reload a state
  dict or a checkpoint to continue.
* Size-like hyper-parameters that the core turns into allocations or uninterruptible loops are
  bounded by their schemas' ranges (``bits``, THA ``prototype_batch``, DHTA ``n_t``,
  ``batch_size``, the inner attack ``steps`` of a defence because Ctrl-C is checked between
  batches; each docstring's "Arguments" section gives the bound), and ``epochs`` × batches per
  epoch must stay below 2**53; other loop counts
  (attack ``steps``, ``epochs``) are not: a huge value is a long computation that Ctrl-C stops
  within a second.
"""
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


def check_bool(v, name: str) -> bool:
    """A flag: bool, numpy.bool_ or an int 0/1 (what ``bool()`` means unambiguously)."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, numbers.Integral) and int(v) in (0, 1):
        return bool(v)
    raise TypeError(f"argument '{name}': expected a bool, got {type(v).__name__}")


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
