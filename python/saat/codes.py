"""Semantic guide codes: SAAT's DMFL mainstay codes and CgAT's CHCM center codes.

Both are closed-form: ``b = sign(Σ_{j∈P} w⁺_j b_j − Σ_{j∈N} w⁻_j b_j)`` over the training codes
``b_j``, with P the training items sharing at least one label with ``y`` and N those sharing
none, ``w⁻_j = 1/|N|``, and

* mainstay (SAAT, ``adv_attack.py``): ``w⁺_j = cos(y, L_j) / Σ_{i∈P} cos(y, L_i)`` — positives
  weighted by their semantic (cosine label) similarity;
* center (CgAT, ``central_adv_train.py``): ``w⁺_j = 1/|P|`` — uniform over positives.

Zero cases (documented behaviour, mirroring ``torch.sign`` in the official code): a bit whose
weighted sum is exactly 0 is 0 in the result; an empty positive (or negative) set contributes
nothing; a label row with no class has no positives, so its code is ``−sign(mean of all codes)``.
Computed in Swift as two (B×N) weight matrices times the (N×K) codes through BLAS.
"""
from __future__ import annotations

import numpy as np

from . import _core
from ._convert import as_float_array, as_float_matrix

__all__ = ["mainstay", "center", "as_pm1"]


def as_pm1(codes, name: str, bits: int | None = None) -> np.ndarray:
    """±1 codes (N, K) of any numeric dtype as float32; values other than −1/+1 raise ValueError."""
    arr = as_float_matrix(codes, name, cols=bits)
    if arr.size and not np.isin(arr, (-1.0, 1.0)).all():
        bad = arr[~np.isin(arr, (-1.0, 1.0))][0]
        raise ValueError(f"argument '{name}': expected binary codes in {{-1, +1}}, found value {bad}")
    return arr


def _codes(kind, labels, train_codes, train_labels):
    tc = as_float_array(train_codes, "train_codes")
    y = as_float_array(labels, "labels")
    if y.ndim != 2 or tc.ndim != 2:
        bad = "labels" if y.ndim != 2 else "train_codes"
        raise ValueError(f"argument '{bad}': expected a 2-d array, got shape {(y if bad == 'labels' else tc).shape}")
    out = np.empty((y.shape[0], tc.shape[1]), np.int8)
    _core.semantic_codes(kind, y, tc, as_float_array(train_labels, "train_labels"), out)
    return out


def mainstay(labels, train_codes, train_labels) -> np.ndarray:
    """SAAT's DMFL mainstay codes of ``labels``.

    Parameters
    ----------
    labels : (B, C) multi-hot 0/1 labels (query labels, or target labels for a targeted attack).
    train_codes : (N, K) training codes in {−1, +1} (any numeric dtype).
    train_labels : (N, C) multi-hot training labels.

    Returns
    -------
    (B, K) int8 codes in {−1, 0, +1} (0 only for an exact tie, see the module docstring).
    """
    return _codes("mainstay", labels, train_codes, train_labels)


def center(labels, train_codes, train_labels) -> np.ndarray:
    """CgAT's CHCM center codes of ``labels`` (same arguments and result as :func:`mainstay`)."""
    return _codes("center", labels, train_codes, train_labels)
