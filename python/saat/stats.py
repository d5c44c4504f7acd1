"""Uncertainty of retrieval numbers: bootstrap confidence intervals of a MAP over queries (and
seeds), paired comparisons of two MAPs, and the verdict of a directional claim.

A MAP is the mean of per-query average precisions (APs), so its uncertainty from the choice of
queries is that of a sample mean. Every function here takes the per-query APs, shaped
``(n_seeds, n_queries)`` (a 1-d array is one seed), and treats the seeds as **strata**: bootstrap
resamples draw queries with replacement *within* each seed (SciPy's multi-sample bootstrap, one
sample per seed), and the statistic is the mean over seeds of each seed's MAP. With one seed this
is the ordinary bootstrap of a mean. The interval reflects the sampling of queries given the
trained models; the spread between seeds (the cost of retraining) is reported separately as the
standard deviation of the per-seed MAPs.

The statistics come from SciPy (``scipy.stats.bootstrap`` with the BCa method, and
``scipy.stats.permutation_test``); nothing is resampled by hand. Every random choice takes a seed:
the same inputs and seed give the same interval and p-value.

No correction for multiple comparisons is applied: a table checks about twenty claims, so at the
95 % level about one of them may be decided by chance.
"""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np

from ._validate import check_int

__all__ = ["bootstrap_ci", "paired_difference", "verdict", "Difference", "CONFIDENCE", "N_RESAMPLES"]

#: Confidence level of every interval of the tables.
CONFIDENCE = 0.95
#: Bootstrap resamples and permutations per interval / p-value. With 9999 resamples the Monte-Carlo
#: standard error of a 2.5 % quantile is about 0.08 standard errors of the mean.
N_RESAMPLES = 9999


def _scipy_stats():
    try:
        import scipy.stats
    except ImportError:
        raise ImportError("saat's confidence intervals need SciPy: pip install scipy") from None
    return scipy.stats


def _strata(ap, name: str) -> np.ndarray:
    """Per-query values as a float64 (n_seeds, n_queries) array; errors name ``name``."""
    try:
        a = np.asarray(ap, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"argument '{name}': expected per-query values (n_queries,) or (n_seeds, n_queries)") from e
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"argument '{name}': expected shape (n_queries,) or (n_seeds, n_queries), got {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 2:
        raise ValueError(f"argument '{name}': expected at least one seed of at least 2 queries, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"argument '{name}': expected finite values, got NaN or infinity")
    return a


def _mean_of_means(*samples, axis=-1):
    """Statistic of a stratified sample: the mean over strata of each stratum's mean."""
    return np.mean([np.mean(s, axis=axis) for s in samples], axis=0)


def bootstrap_ci(ap, *, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = 0) -> tuple:
    """Bootstrap confidence interval of the MAP (mean of ``ap``), stratified by seed.

    Parameters
    ----------
    ap : per-query values, (n_queries,) or (n_seeds, n_queries) with every seed over the same
        number of queries; at least 2 queries.
    confidence : confidence level in (0, 1) (default 0.95).
    n_resamples : bootstrap resamples (default 9999).
    seed : seed of the resampling.

    Returns
    -------
    (low, high): the BCa interval of ``scipy.stats.bootstrap``. When every value is equal (all
    queries scored 0, say) the resampling distribution is a point and the interval is
    ``(value, value)``; when BCa is undefined (its acceleration needs jackknife spread: values
    equal up to rounding, or all but one equal) it is the percentile interval.
    """
    a = _strata(ap, "ap")
    if not 0 < confidence < 1:
        raise ValueError(f"argument 'confidence': expected a level in (0, 1), got {confidence}")
    n_resamples = check_int(n_resamples, "n_resamples", lo=100)
    if np.all(a == a.flat[0]):
        return float(a.flat[0]), float(a.flat[0])

    def interval(method):
        res = _scipy_stats().bootstrap(tuple(a), _mean_of_means, n_resamples=n_resamples, vectorized=True,
                                       confidence_level=confidence, method=method, rng=np.random.default_rng(seed))
        return float(res.confidence_interval.low), float(res.confidence_interval.high)

    with warnings.catch_warnings():
        # a degenerate BCa (NaN ends, handled below) warns; the warning would say nothing more
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", getattr(_scipy_stats(), "DegenerateDataWarning", RuntimeWarning))
        lo, hi = interval("BCa")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        # BCa is undefined when the jackknife has no spread (values equal up to rounding, or all
        # but one equal); the percentile interval is then the defined one.
        lo, hi = interval("percentile")
    return lo, hi


class Difference(NamedTuple):
    """A paired comparison ``mean(a) − factor·mean(b)``."""
    difference: float
    ci: tuple            # (low, high) paired bootstrap interval of the difference
    p_value: float       # two-sided, paired permutation test of "no difference"
    n_pairs: int         # pairs compared (queries × seeds)


def paired_difference(a, b, *, factor: float = 1.0, confidence: float = CONFIDENCE,
                      n_resamples: int = N_RESAMPLES, seed: int = 0) -> Difference:
    """Paired comparison of two MAPs over the same queries (and seeds).

    ``a`` and ``b`` are per-query values of the same shape, (n_queries,) or (n_seeds,
    n_queries), element (s, q) of both coming from the same seed s and query q. The difference
    is ``mean(a) − factor·mean(b)`` (``factor`` 2 tests "a is at least twice b"); its interval
    is the stratified bootstrap interval (:func:`bootstrap_ci`) of the per-pair differences
    ``a − factor·b``, and its p-value that of ``scipy.stats.permutation_test`` with
    ``permutation_type='samples'``: under the null hypothesis ``a_sq`` and ``factor·b_sq`` are
    exchangeable within each pair, so each pair is swapped at random.
    """
    x, y = _strata(a, "a"), _strata(b, "b")
    n_resamples = check_int(n_resamples, "n_resamples", lo=100)
    if x.shape != y.shape:
        raise ValueError(f"arguments 'a' and 'b': expected the same (seeds, queries) shape to pair, got {x.shape} and {y.shape}")
    if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 0):
        raise ValueError(f"argument 'factor': expected a finite number > 0, got {factor!r}")
    y = factor * y
    d = x - y
    ci = bootstrap_ci(d, confidence=confidence, n_resamples=n_resamples, seed=seed)
    diff = float(d.mean())
    if np.all(d == 0):
        p = 1.0
    else:
        res = _scipy_stats().permutation_test(
            (x.ravel(), y.ravel()), lambda u, v, axis=-1: np.mean(u - v, axis=axis), permutation_type="samples",
            vectorized=True, n_resamples=n_resamples, alternative="two-sided",
            rng=np.random.default_rng(seed))
        p = float(res.pvalue)
    return Difference(diff, ci, p, int(d.size))


def verdict(ci, direction: str):
    """Whether a directional claim about a difference holds, given its interval ``ci``:
    ``direction`` "<" claims the difference is below 0, ">" above 0. True when the whole interval
    is on the claimed side, False when it is wholly on the other side, None (undecided) when it
    includes 0."""
    if direction not in ("<", ">"):
        raise ValueError(f"argument 'direction': expected '<' or '>', got {direction!r}")
    lo, hi = ci
    if lo <= 0 <= hi:
        return None
    return (hi < 0) if direction == "<" else (lo > 0)
