"""Evaluate an attack the way the papers' tables do: clean MAP, MAP (or t-MAP) under attack, the
"theory" MAP of the guiding code itself, and the perceptibility of the perturbation."""
from __future__ import annotations

import time

import numpy as np

from . import metrics
from ._convert import as_images, as_labels
from ._validate import check_int
from .attacks.base import Attack
from .codes import as_pm1

__all__ = ["evaluate_attack", "theory_map"]


def theory_map(guide, targeted: bool, db_codes, db_labels, labels, k: int) -> float:
    """The "theory" MAP of the papers' tables: how well the guide code itself (an attack's
    ``last_codes``, a 0 bit counting as +1) would do as a query. Non-targeted: MAP@k of ``−guide``
    against the true ``labels`` (the lower, the stronger the guide); targeted: t-MAP@k of ``guide``
    against the target ``labels``."""
    g = np.where(np.asarray(guide) >= 0, 1, -1).astype(np.int8)
    if targeted:
        return metrics.t_map_at_k(g, db_codes, labels, db_labels, k=k)
    return metrics.map_at_k(-g, db_codes, labels, db_labels, k=k)


def evaluate_attack(model, attack: Attack, query_images, query_labels, db_codes, db_labels, *, k: int = 5000,
                    target_labels=None, return_images: bool = False) -> dict:
    """Attack the queries and measure retrieval against a database.

    Parameters
    ----------
    model : HashingModel whose codes are evaluated (normally ``attack.model``).
    attack : a saat attack object.
    query_images : (Q, C, H, W) in [0, 1];  query_labels : (Q, C) multi-hot.
    db_codes : (N, K) ±1 database codes (e.g. ``model.encode(db_images)``); db_labels : (N, C).
    k : MAP@k cut-off (5000 in the papers; at most the database size).
    target_labels : (Q, C) target labels for a targeted attack (e.g. from
        :func:`saat.attacks.select_target_labels`); required iff ``attack.targeted``.

    Returns
    -------
    dict with ``clean_map`` (MAP@k of the clean queries w.r.t. their true labels), ``adv_map``
    (MAP@k of the adversarial queries w.r.t. the true labels), for targeted attacks also
    ``clean_tmap`` and ``adv_tmap`` (relevance from the target labels), ``theory_map`` (MAP of the
    guide code itself: −b for non-targeted, t-MAP of b for targeted; None for attacks without a
    guide code; a 0 bit of the guide code counts as +1 here), ``linf``/``l2``/``mse`` (mean
    perceptibility as SAAT reports it, see :func:`saat.metrics.perceptibility`), ``max_abs``
    (element-wise max |x' − x|, the quantity ε bounds) and ``seconds`` (attack time).
    """
    x, y, t, dbc, dbl, k = check_inputs(model, attack, query_images, query_labels, db_codes, db_labels, k,
                                        target_labels)
    t0 = time.perf_counter()
    adv = attack(x, t if attack.targeted else y)
    seconds = time.perf_counter() - t0
    return summarise(model, attack, x, y, t, adv, attack.last_codes, dbc, dbl, k, seconds, return_images)


def check_inputs(model, attack, query_images, query_labels, db_codes, db_labels, k, target_labels):
    """The arguments of :func:`evaluate_attack`, checked and converted: ``(x, y, t, db_codes,
    db_labels, k)`` with ``t`` None for a non-targeted attack."""
    x = as_images(query_images, "query_images", model.input_shape)
    y = as_labels(query_labels, "query_labels", rows=x.shape[0])
    dbc = as_pm1(db_codes, "db_codes", bits=model.bits)
    dbl = as_labels(db_labels, "db_labels", rows=dbc.shape[0], classes=y.shape[1])
    k = check_int(k, "k", 1)
    t = None
    if attack.targeted:
        if target_labels is None:
            raise TypeError("argument 'target_labels': required for a targeted attack")
        t = as_labels(target_labels, "target_labels", rows=x.shape[0], classes=y.shape[1])
    elif target_labels is not None:
        raise ValueError("argument 'target_labels': only for targeted attacks (attack.targeted is False)")
    if x.shape[0] == 0:
        raise ValueError("argument 'query_images': expected at least one query, got an empty batch")
    return x, y, t, dbc, dbl, k


def summarise(model, attack, x, y, t, adv, guide, dbc, dbl, k, seconds, return_images) -> dict:
    """The result dict of :func:`evaluate_attack` from the adversarial images ``adv`` and the
    attack's guide codes ``guide`` (None for an attack without them)."""
    clean_codes = model.encode(x)
    adv_codes = model.encode(adv)
    res = {"attack": type(attack).__name__, "targeted": attack.targeted, "seconds": seconds,
           "clean_map": metrics.map_at_k(clean_codes, dbc, y, dbl, k=k),
           "adv_map": metrics.map_at_k(adv_codes, dbc, y, dbl, k=k)}
    if attack.targeted:
        res["clean_tmap"] = metrics.t_map_at_k(clean_codes, dbc, t, dbl, k=k)
        res["adv_tmap"] = metrics.t_map_at_k(adv_codes, dbc, t, dbl, k=k)
    res["theory_map"] = None if guide is None else theory_map(guide, attack.targeted, dbc, dbl,
                                                                t if attack.targeted else y, k)
    p = metrics.perceptibility(adv, x)
    res.update(linf=p.linf, l2=p.l2, mse=p.mse, max_abs=float(np.abs(adv - x).max()))
    if return_images:
        res["adv_images"] = adv
    return res
