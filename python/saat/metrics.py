"""Retrieval evaluation of hashing models: MAP@k, t-MAP@k, precision-recall, P@N, Hamming
ranking, the perceptibility of adversarial perturbations, and a check for collapsed codes.

Protocol (SAAT / CgAT evaluation code). A database item is **relevant** to a query iff their
multi-hot label vectors share a class (``y_q · y_db > 0``). The database is ranked by ascending
Hamming distance ``d_H(b_q, b_db) = popcount(b_q XOR b_db) = (K − b_q·b_db) / 2`` with **ties
broken by ascending database index** (a stable ranking). The official scripts rank with numpy's
default, unstable ``argsort``, whose order among equal distances is unspecified, so MAP values can
differ from theirs in the last digits when ties straddle the k-th rank; the stable order equals
``np.argsort(dist, kind="stable")`` and faiss ``IndexBinaryFlat``.

Sources (formulas re-expressed, no code copied): SAAT ``utils/hamming_matching.py``
(github.com/xandery-geek/SAAT: ``cal_map``, ``cal_pr``, ``cal_top_n``, ``cal_perceptibility``),
CgAT ``utils/hamming_matching.py`` (github.com/xunguangwang/CgAT: ``CalcTopMap``, ``CalcMap``),
DeepHash-pytorch ``utils/tools.py`` (github.com/swuxyj/DeepHash-pytorch: ``CalcTopMap``).

Input conventions, shared by every function here:

* **Codes** ``(n, K)``: ±1 values of any integer or floating dtype (what ``sign(F(x))`` and
  community evaluation scripts produce; bool is rejected). Every value must be exactly ``-1`` or
  ``+1``; anything else — including ``0`` from ``sign(0)`` — raises ValueError naming the argument
  (map such codes yourself, e.g. ``np.where(c > 0, 1, -1)``, which is also the packing rule of the
  core: value > 0 → bit 1, else bit 0). int8 C-contiguous arrays are passed to the core without a
  copy; other dtypes are checked and converted to int8.
* **Labels** ``(n, C)``: multi-hot 0/1 of any integer, floating or bool dtype; other values raise
  ValueError. They are converted to uint8 (no copy for uint8 / bool C-contiguous input).
* The work runs in the Swift core with the GIL released, parallel over queries on ``threads``
  threads (``None``: all CPUs); results do not depend on the thread count.
"""
from __future__ import annotations

import numbers
import warnings
from typing import NamedTuple

import numpy as np

from . import _core
from ._convert import as_real_array
from ._validate import check_int

__all__ = ["map_at_k", "t_map_at_k", "pr_curve", "precision_at_n", "hamming_rank",
           "perceptibility", "Perceptibility", "code_spread", "CodeSpread", "CollapseWarning", "warn_if_collapsed"]


# ---------------------------------------------------------------------------------- conversion

def _codes(c, name: str) -> np.ndarray:
    """±1 codes as a C-contiguous int8 (n, K) array; ValueError/TypeError naming ``name``."""
    if not isinstance(c, np.ndarray):
        try:
            c = np.asarray(c)
        except Exception as e:  # ragged lists and the like
            raise TypeError(f"argument '{name}': expected an array of ±1 codes, got {type(c).__name__}") from e
    if c.dtype == np.bool_ or not (np.issubdtype(c.dtype, np.integer) or np.issubdtype(c.dtype, np.floating)):
        raise TypeError(f"argument '{name}': expected ±1 codes of an integer or float dtype, got dtype {c.dtype}")
    if c.ndim != 2:
        raise ValueError(f"argument '{name}': expected a 2-d array (n, K) of codes, got shape {c.shape}")
    if c.shape[1] < 1:
        raise ValueError(f"argument '{name}': expected codes with at least one bit, got shape {c.shape}")
    if c.dtype == np.int8:
        # The core checks int8 values itself while packing (one pass, no copy here).
        return np.ascontiguousarray(c)
    ok = (c == 1) | (c == -1)
    if not ok.all():
        bad = c.reshape(-1)[np.flatnonzero(~ok.reshape(-1))[0]]
        raise ValueError(f"argument '{name}': expected codes of exactly -1 or +1, got {bad!r} "
                         "(map other values with np.where(c > 0, 1, -1))")
    return np.ascontiguousarray(c, dtype=np.int8)


def _labels(y, name: str, rows: int, rows_of: str) -> np.ndarray:
    """Multi-hot 0/1 labels as C-contiguous uint8 (rows, C); ValueError/TypeError naming ``name``."""
    if not isinstance(y, np.ndarray):
        try:
            y = np.asarray(y)
        except Exception as e:
            raise TypeError(f"argument '{name}': expected an array of 0/1 labels, got {type(y).__name__}") from e
    if not (y.dtype == np.bool_ or np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise TypeError(f"argument '{name}': expected 0/1 labels of a numeric or bool dtype, got dtype {y.dtype}")
    if y.ndim != 2:
        raise ValueError(f"argument '{name}': expected a 2-d array (n, C) of multi-hot labels, got shape {y.shape}")
    if y.shape[0] != rows:
        raise ValueError(f"argument '{name}': expected {rows} rows like {rows_of}, got shape {y.shape}")
    if y.shape[1] < 1:
        raise ValueError(f"argument '{name}': expected labels with at least one class, got shape {y.shape}")
    if y.dtype == np.bool_:
        return np.ascontiguousarray(y).view(np.uint8)
    if y.dtype == np.uint8:
        return np.ascontiguousarray(y)   # the core checks 0/1 while packing
    ok = (y == 0) | (y == 1)
    if not ok.all():
        bad = y.reshape(-1)[np.flatnonzero(~ok.reshape(-1))[0]]
        raise ValueError(f"argument '{name}': expected multi-hot labels of 0 or 1, got {bad!r}")
    return np.ascontiguousarray(y, dtype=np.uint8)


def _threads(threads) -> int:
    if threads is None:
        return 0
    return check_int(threads, "threads", lo=1, hi=256)


def _code_pair(query_codes, db_codes):
    """Query and database codes as int8 ±1, of one width, with at least one database code."""
    q = _codes(query_codes, "query_codes")
    d = _codes(db_codes, "db_codes")
    if d.shape[1] != q.shape[1]:
        raise ValueError(f"argument 'db_codes': expected codes of {q.shape[1]} bits like query_codes, "
                         f"got shape {d.shape}")
    if d.shape[0] < 1:
        raise ValueError(f"argument 'db_codes': expected at least one database code, got shape {d.shape}")
    return q, d


def _prepare(query_codes, db_codes, query_labels, db_labels, qlab_name: str = "query_labels"):
    q, d = _code_pair(query_codes, db_codes)
    if q.shape[0] < 1:
        raise ValueError("argument 'query_codes': expected at least one query, got shape "
                         f"{q.shape}")
    ql = _labels(query_labels, qlab_name, q.shape[0], "query_codes")
    dl = _labels(db_labels, "db_labels", d.shape[0], "db_codes")
    if dl.shape[1] != ql.shape[1]:
        raise ValueError(f"argument 'db_labels': expected {ql.shape[1]} classes like {qlab_name}, "
                         f"got shape {dl.shape}")
    return q, d, ql, dl


# ------------------------------------------------------------------------------------- metrics

def map_at_k(query_codes, db_codes, query_labels, db_labels, k: int = 5000, *,
             return_ap: bool = False, threads: int | None = None):
    """Mean average precision over the top ``k`` of each query's Hamming ranking (MAP@k).

    For query q with ranked relevance ``g`` (first k items, ties by ascending database index) and
    ``R = Σ g`` relevant items retrieved::

        AP_q = (1/R) · Σ_{r=1..R} r / pos_r      (pos_r: 1-based rank of the r-th relevant item)
        AP_q = 0                                  if R == 0 (the query still counts in the mean)
        MAP  = mean_q AP_q

    This is SAAT ``cal_map`` / CgAT and DeepHash-pytorch ``CalcTopMap`` (k = 5000 in SAAT for
    every dataset); ``k`` ≥ database size gives the full MAP (CgAT ``CalcMap``).

    Parameters
    ----------
    query_codes : (nq, K) ±1 codes.   db_codes : (N, K) ±1 codes.
    query_labels : (nq, C) 0/1.       db_labels : (N, C) 0/1.
    k : int ≥ 1 (default 5000); k > N means k = N.
    return_ap : also return the per-query APs, float64 (nq,).
    threads : worker threads (None: all CPUs).

    Returns
    -------
    float MAP, or ``(MAP, ap)`` with ``return_ap=True``.
    """
    k = check_int(k, "k", lo=1)
    q, d, ql, dl = _prepare(query_codes, db_codes, query_labels, db_labels)
    ap = np.empty(q.shape[0], dtype=np.float64) if return_ap else None
    m = _core.map_at_k(q, d, ql, dl, k, ap, threads=_threads(threads))
    return (m, ap) if return_ap else m


def t_map_at_k(query_codes, db_codes, target_labels, db_labels, k: int = 5000, *,
               return_ap: bool = False, threads: int | None = None):
    """Targeted MAP@k (t-MAP): ``map_at_k`` with relevance computed from the **target** labels.

    A database item is relevant to adversarial query q iff it shares a class with the target label
    ``y_t`` of q (``y_t · y_db > 0``); ranking, AP and the no-relevant rule are those of
    ``map_at_k``. SAAT adv_attack.py reports t-MAP@5000; THA / ProS-GAN use the full database
    (pass ``k`` ≥ N). The "theory" t-MAP of a target/anchor/mainstay code is this function with
    that code as ``query_codes``.

    Parameters are those of ``map_at_k`` with ``target_labels`` (nq, C) in place of query labels.
    """
    k = check_int(k, "k", lo=1)
    q, d, tl, dl = _prepare(query_codes, db_codes, target_labels, db_labels, qlab_name="target_labels")
    ap = np.empty(q.shape[0], dtype=np.float64) if return_ap else None
    m = _core.map_at_k(q, d, tl, dl, k, ap, threads=_threads(threads))
    return (m, ap) if return_ap else m


def pr_curve(query_codes, db_codes, query_labels, db_labels, *, threads: int | None = None):
    """Precision at recall levels 0.01, 0.02, …, 1.00, averaged over queries (SAAT ``cal_pr``).

    Per query, on the full Hamming ranking (ties by index), with ``n_rel`` relevant items in the
    database and recall level ``r_l = l · 0.01``::

        m_l = int(n_rel * r_l)          float64 product truncated, exactly as SAAT computes it
                                        (e.g. n_rel = 100 at l = 29 gives m = 28, because
                                        29 * 0.01 * 100 = 28.999999999999996)
        P_q(r_l) = m_l / (1-based rank at which the m_l-th relevant item is retrieved)

    and ``precision[l] = mean_q P_q(r_l)``. When ``m_l = 0`` (a query with no relevant item, or
    ``n_rel · r_l < 1``) the term is 0 — SAAT's ``0 / position`` — also where SAAT's lookup would
    raise because rank 1 is relevant. Use ``target_labels`` as ``query_labels`` for targeted curves.

    Returns
    -------
    (precision, recall): two float64 arrays of shape (100,); ``recall[l-1] = l * 0.01``.
    """
    q, d, ql, dl = _prepare(query_codes, db_codes, query_labels, db_labels)
    precision = np.empty(100, dtype=np.float64)
    recall = np.empty(100, dtype=np.float64)
    _core.pr_curve(q, d, ql, dl, precision, recall, threads=_threads(threads))
    return precision, recall


def precision_at_n(query_codes, db_codes, query_labels, db_labels, n=range(100, 1001, 10), *,
                   threads: int | None = None) -> np.ndarray:
    """Precision within the first N retrieved items, averaged over queries (SAAT ``cal_top_n``).

    ``P_q(N) = (relevant items among ranks 1..N) / N`` on the Hamming ranking (ties by index), for
    each N in ``n`` (default 100, 110, …, 1000 as in SAAT metrics.py). An N larger than the database
    size N_db is clamped to N_db, i.e. gives the precision of the whole database ``n_rel / N_db``
    (SAAT's indexing would fail there).

    Parameters
    ----------
    n : int or iterable of ints, each ≥ 1.

    Returns
    -------
    float64 array with one precision per N (shape (len(n),); (1,) for an int).
    """
    if isinstance(n, numbers.Integral) and not isinstance(n, bool):
        ns = [int(n)]
    else:
        try:
            ns = list(n)
        except TypeError:
            raise TypeError(f"argument 'n': expected an int or an iterable of ints, got {type(n).__name__}") from None
        if not ns:
            raise ValueError("argument 'n': expected at least one N")
    ns = np.array([check_int(v, "n", lo=1, hi=2**63 - 1) for v in ns], dtype=np.int64)
    q, d, ql, dl = _prepare(query_codes, db_codes, query_labels, db_labels)
    out = np.empty(len(ns), dtype=np.float64)
    _core.precision_at_n(q, d, ql, dl, ns, out, threads=_threads(threads))
    return out


def hamming_rank(query_codes, db_codes, k: int, *, threads: int | None = None) -> np.ndarray:
    """Indices of the ``k`` nearest database codes of each query, nearest first.

    Ranking by ascending Hamming distance with ties broken by ascending database index — the
    order of ``np.argsort(dist, axis=1, kind="stable")[:, :k]`` and of faiss ``IndexBinaryFlat`` —
    computed by a counting sort over the distances 0..K (O(N + K) per query).

    Returns
    -------
    int64 array of shape (nq, min(k, N)).
    """
    k = check_int(k, "k", lo=1)
    q, d = _code_pair(query_codes, db_codes)
    out = np.empty((q.shape[0], min(k, d.shape[0])), dtype=np.int64)
    _core.hamming_rank(q, d, k, out, threads=_threads(threads))
    return out


# ------------------------------------------------------------------------------ collapse

class CodeSpread(NamedTuple):
    """How a set of codes spreads over the code space (:func:`code_spread`)."""
    distinct: int
    """Number of distinct codes."""
    commonest_share: float
    """Fraction of the codes equal to the most common one."""


class CollapseWarning(UserWarning):
    """A model gives most images one and the same code. Its MAP then sits near the share of
    relevant database items (every ranking is a tie broken by index), so attack and defence
    effects measured on it mean nothing. Usual causes: too few epochs, no backbone pretraining,
    a learning rate too high for the data."""


#: ``warn_if_collapsed`` warns when more than this fraction of the codes are one code. A model
#: that tells labels apart gives each label set its own code, so one code holds about the share
#: of the most common label set (a few percent on multi-label benchmarks, 1/C on C balanced
#: classes); the collapsed 2-epoch alexnet models of the short table gave one code to every image.
COLLAPSE_SHARE = 0.5


def code_spread(codes) -> CodeSpread:
    """Distinct codes among ``codes`` (n, K) (±1, see the module's input conventions; n ≥ 1) and
    the share of the most common one."""
    c = _codes(codes, "codes")
    if c.shape[0] == 0:
        raise ValueError("argument 'codes': expected at least one code, got shape (0, K)")
    _, counts = np.unique(np.packbits(c > 0, axis=1), axis=0, return_counts=True)
    return CodeSpread(int(counts.size), float(counts.max()) / c.shape[0])


def warn_if_collapsed(codes, what: str, *, stacklevel: int = 2) -> CodeSpread:
    """Issue a :class:`CollapseWarning` naming ``what`` when more than ``COLLAPSE_SHARE`` of
    ``codes`` are one code; returns :func:`code_spread` either way. ``saat.train`` checks the
    training images' codes after training, ``saat.experiments.robustness_table`` every model's
    database codes."""
    spread = code_spread(codes)
    if spread.commonest_share > COLLAPSE_SHARE:
        n = len(codes)
        warnings.warn(f"{what}: {round(spread.commonest_share * n)} of {n} codes "
                      f"({100 * spread.commonest_share:.0f}%) are one code ({spread.distinct} distinct in all): the model "
                      "has collapsed or is not trained yet, and MAP measured on it is near the share of relevant "
                      "items. Train longer, pretrain the backbone or lower the learning rate.",
                      CollapseWarning, stacklevel=stacklevel + 1)
    return spread


# ------------------------------------------------------------------------------ perceptibility

class Perceptibility(NamedTuple):
    """Size of adversarial perturbations, averaged over images and channels (SAAT ``cal_perceptibility``)."""
    linf: float
    """Mean matrix ∞-norm (max absolute row sum over the width axis) of x_adv − x per (image, channel)."""
    l2: float
    """Mean spectral norm (largest singular value) of x_adv − x per (image, channel)."""
    mse: float
    """Mean squared difference over all elements."""


def perceptibility(x_adv, x) -> Perceptibility:
    """Perceptibility of adversarial images: ``(linf, l2, mse)`` as in SAAT ``cal_perceptibility``.

    With ``D = x_adv − x`` viewed as matrices over the last two axes (H, W)::

        linf = mean over (image, channel) of ‖D‖_∞ = max_h Σ_w |D[h, w]|   (matrix ∞-norm)
        l2   = mean over (image, channel) of ‖D‖_2 = σ_max(D)               (spectral norm)
        mse  = mean of D²

    Note that ``linf`` is the *matrix* ∞-norm torch's ``matrix_norm(ord=inf)`` computes, not the
    element-wise max |D| an ε-ball bounds (that is ``np.abs(D).max()``). THA / DHTA report
    ``sqrt(mse)``. Computed with numpy in float64.

    Parameters
    ----------
    x_adv, x : arrays of equal shape with at least 2 dims, e.g. (N, 3, H, W), finite.
    """
    a = as_real_array(x_adv, "x_adv")
    b = as_real_array(x, "x")
    if a.ndim < 2:
        raise ValueError(f"argument 'x_adv': expected an array of at least 2 dims (…, H, W), got shape {a.shape}")
    if b.shape != a.shape:
        raise ValueError(f"argument 'x': expected shape {a.shape} like x_adv, got {b.shape}")
    if a.size == 0:
        raise ValueError(f"argument 'x_adv': expected a non-empty array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("argument 'x_adv': expected finite values")
    if not np.isfinite(b).all():
        raise ValueError("argument 'x': expected finite values")
    dlt = a - b
    linf = float(np.abs(dlt).sum(axis=-1).max(axis=-1).mean())
    l2 = float(np.linalg.norm(dlt, ord=2, axis=(-2, -1)).mean())
    mse = float(np.mean(dlt * dlt))
    return Perceptibility(linf, l2, mse)
