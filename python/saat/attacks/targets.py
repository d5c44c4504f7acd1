"""Target labels for the targeted attacks."""
from __future__ import annotations

import numpy as np

from .._convert import as_labels
from .._validate import check_int


def select_target_labels(query_labels, db_labels, seed: int = 0) -> np.ndarray:
    """Target labels for targeted attacks, as SAAT ``adv_attack.py``: for every query, a label
    vector drawn uniformly from the *unique* non-zero label vectors of the database that share no
    class with the query's labels.

    Returns float32 (Q, C). Raises ValueError naming ``query_labels`` when some query shares a
    class with every database label vector (no valid target exists).
    """
    q = as_labels(query_labels, "query_labels")
    db = as_labels(db_labels, "db_labels", classes=q.shape[1])
    seed = check_int(seed, "seed", 0, 2**63 - 1)
    uniq = np.unique(db[db.sum(1) > 0], axis=0)
    if uniq.shape[0] == 0:
        raise ValueError("argument 'db_labels': expected at least one database item with a label")
    rng = np.random.default_rng(seed)
    overlap = (q @ uniq.T) > 0
    out = np.empty_like(q)
    for i in range(q.shape[0]):
        cand = np.flatnonzero(~overlap[i])
        if cand.size == 0:
            raise ValueError(f"argument 'query_labels': query {i} shares a class with every database label vector; "
                             "no target label exists")
        out[i] = uniq[cand[rng.integers(cand.size)]]
    return out
