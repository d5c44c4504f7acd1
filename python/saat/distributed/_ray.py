"""Ray side of :mod:`saat.distributed`: sharded attack evaluation and sharded retrieval metrics."""
from __future__ import annotations

import time

import numpy as np

from .. import metrics
from .._validate import check_int
from ..evaluation import check_inputs, summarise

__all__ = ["evaluate_attack", "map_at_k", "t_map_at_k", "hamming_rank", "require_ray"]

#: Queries per block when a code shard measures distances and relevance of its top-k.
_QUERY_BLOCK = 256


def require_ray(address: str | None = None):
    """The ``ray`` module, connected: the running connection, else ``ray.init(address)`` (which
    joins the cluster at ``address`` or ``RAY_ADDRESS`` when set, or starts a local instance)."""
    try:
        import ray
    except ImportError as e:  # the optional extra saat[ray]
        raise ImportError("saat.distributed needs Ray: pip install 'saat[ray]'") from e
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level="WARNING")
    return ray


def split(n: int, parts: int) -> list:
    """``parts`` contiguous near-equal ranges of ``range(n)`` as (lo, hi), the first ``n % parts``
    one longer (the split of the core's parallel loops)."""
    q, r = divmod(n, parts)
    out, lo = [], 0
    for p in range(parts):
        hi = lo + q + (1 if p < r else 0)
        out.append((lo, hi))
        lo = hi
    return out


def _cpus_per_shard(ray, shards: int) -> float:
    """CPUs each actor asks for: 1, or the cluster's CPUs shared out when there are more shards
    than CPUs (so every actor can be placed at once instead of waiting for a free CPU forever)."""
    total = float(ray.cluster_resources().get("CPU", 1))
    return 1.0 if shards <= total else max(0.01, int(100 * total / shards) / 100)


def _shard_count(ray, shards, n: int, what: str) -> int:
    """``shards`` checked (1 ≤ shards ≤ n), or by default the cluster's CPU count capped at n."""
    if shards is None:
        return max(1, min(n, int(ray.cluster_resources().get("CPU", 1))))
    s = check_int(shards, "shards", 1)
    if s > n:
        raise ValueError(f"argument 'shards': expected at most {n} (the number of {what}), got {s}")
    return s


_REMOTES = {}


def _remotes(ray):
    """The actor classes, defined once per process (``ray.remote`` needs Ray imported)."""
    if not _REMOTES:
        @ray.remote(num_cpus=1)
        class AttackShard:
            """Holds one copy of the model and the attack (rebuilt from their pickles); attacks
            the query slices it is given with their offset in the whole query set."""

            def __init__(self, attack):
                from .. import kernels
                kernels.set_threads(1)   # one CPU per actor; results do not depend on it
                self.attack = attack

            def run(self, x, labels, first):
                adv = self.attack(x, labels, first_index=first)
                return adv, self.attack.last_codes

        @ray.remote(num_cpus=1)
        class CodeShard:
            """Holds rows [offset, offset + n) of the database codes (and labels); returns each
            query's local top-k in (distance, index) order with global indices."""

            def __init__(self, codes, labels, offset):
                self.codes, self.offset = codes, offset
                # Bit-packed copies for the distances and relevance of the selected items.
                self.packed = np.packbits(codes > 0, axis=1)
                self.packed_labels = None if labels is None else np.packbits(labels > 0, axis=1)

            def topk(self, q, qlabels, k):
                idx = metrics.hamming_rank(q, self.codes, k, threads=1)
                qp = np.packbits(q > 0, axis=1)
                dist = np.empty(idx.shape, np.int32)
                rel = None if qlabels is None else np.empty(idx.shape, np.bool_)
                lp = None if qlabels is None else np.packbits(qlabels > 0, axis=1)
                for lo in range(0, q.shape[0], _QUERY_BLOCK):
                    hi = min(q.shape[0], lo + _QUERY_BLOCK)
                    sel = idx[lo:hi]
                    dist[lo:hi] = np.bitwise_count(self.packed[sel] ^ qp[lo:hi, None, :]).sum(axis=2, dtype=np.int32)
                    if rel is not None:
                        rel[lo:hi] = (self.packed_labels[sel] & lp[lo:hi, None, :]).any(axis=2)
                return dist, idx + self.offset, rel

        _REMOTES.update(AttackShard=AttackShard, CodeShard=CodeShard)
    return _REMOTES


def evaluate_attack(model, attack, query_images, query_labels, db_codes, db_labels, *, k: int = 5000,
                    target_labels=None, shards: int | None = None, return_images: bool = False) -> dict:
    """:func:`saat.evaluate_attack` with the queries attacked in ``shards`` contiguous pieces by
    Ray actors, each holding one copy of the model and of the attack (sent through the object
    store; a THA attack retrains its prototype net from its seed in each actor).

    The result dict is the same as :func:`saat.evaluate_attack`'s, and so are its numbers: the
    adversarial images are bit-identical to the single-process call (each piece is attacked with
    its offset in the query set, see the attack's ``first_index``). ``shards``: number of actors,
    1 ≤ shards ≤ number of queries (default: the cluster's CPU count, capped at the queries); each
    actor takes one CPU (a share of the CPUs when there are more shards than CPUs) and runs the
    kernels on one thread. ``seconds`` is the wall time of the
    sharded attack. ``attack.last_codes`` on the caller's side is left untouched.
    """
    x, y, t, dbc, dbl, k = check_inputs(model, attack, query_images, query_labels, db_codes, db_labels, k,
                                        target_labels)
    ray = require_ray()
    parts = split(x.shape[0], _shard_count(ray, shards, x.shape[0], "queries"))
    remote = _remotes(ray)["AttackShard"]
    labels = t if attack.targeted else y
    attack_ref = ray.put(attack)
    cpus = _cpus_per_shard(ray, len(parts))
    actors = [remote.options(num_cpus=cpus).remote(attack_ref) for _ in parts]
    try:
        t0 = time.perf_counter()
        outs = ray.get([a.run.remote(x[lo:hi], labels[lo:hi], lo) for a, (lo, hi) in zip(actors, parts)])
        seconds = time.perf_counter() - t0
    finally:
        for a in actors:
            ray.kill(a)
    adv = np.concatenate([o[0] for o in outs])
    guide = None if outs[0][1] is None else np.concatenate([o[1] for o in outs])
    return summarise(model, attack, x, y, t, adv, guide, dbc, dbl, k, seconds, return_images)


def _sharded_topk(q, d, ql, dl, k, shards):
    """Every query's global top-min(k, N) as (distance, index, relevance), merged from the
    database shards' local top-k lists under the (distance, index) order."""
    ray = require_ray()
    for arr, name in ((q, "query_codes"), (d, "db_codes")):
        ok = (arr == 1) | (arr == -1)
        if not ok.all():
            raise ValueError(f"argument '{name}': expected codes of exactly -1 or +1, "
                             f"got {arr.reshape(-1)[np.flatnonzero(~ok.reshape(-1))[0]]!r}")
    for arr, name in ((ql, "query_labels"), (dl, "db_labels")):
        if arr is not None and not ((arr == 0) | (arr == 1)).all():
            raise ValueError(f"argument '{name}': expected multi-hot labels of 0 or 1")
    n = d.shape[0]
    parts = split(n, _shard_count(ray, shards, n, "database codes"))
    remote = _remotes(ray)["CodeShard"]
    cpus = _cpus_per_shard(ray, len(parts))
    actors = [remote.options(num_cpus=cpus).remote(d[lo:hi], None if dl is None else dl[lo:hi], lo) for lo, hi in parts]
    try:
        q_ref = ray.put(q)
        ql_ref = ray.put(ql)
        outs = ray.get([a.topk.remote(q_ref, ql_ref, k) for a in actors])
    finally:
        for a in actors:
            ray.kill(a)
    kk = min(k, n)
    dist = np.concatenate([o[0] for o in outs], axis=1).astype(np.int64)
    idx = np.concatenate([o[1] for o in outs], axis=1)
    order = np.argsort(dist * n + idx, axis=1, kind="stable")[:, :kk]
    rel = None if ql is None else np.take_along_axis(np.concatenate([o[2] for o in outs], axis=1), order, axis=1)
    return np.take_along_axis(idx, order, axis=1), rel


def _map_from_relevance(rel: np.ndarray) -> tuple:
    """MAP and per-query APs from the ranked relevance (nq, k), with the arithmetic of the core's
    ``mapAtK`` (float64; AP = Σ_r r/pos_r / R summed in rank order; the mean summed in query
    order), so the value equals :func:`saat.metrics.map_at_k`'s exactly."""
    found = np.cumsum(rel, axis=1, dtype=np.int64)
    pos = np.arange(1, rel.shape[1] + 1, dtype=np.float64)
    terms = np.where(rel, found / pos, 0.0)
    sums = np.cumsum(terms, axis=1)[:, -1]      # sequential, like the core's loop (adding 0.0 is exact)
    total = found[:, -1]
    ap = np.where(total == 0, 0.0, sums / np.maximum(total, 1))
    return float(np.cumsum(ap)[-1] / ap.shape[0]), ap


def map_at_k(query_codes, db_codes, query_labels, db_labels, k: int = 5000, *, shards: int | None = None,
             return_ap: bool = False):
    """:func:`saat.metrics.map_at_k` with the database codes split over ``shards`` Ray actors
    (default: the cluster's CPU count, capped at the database size). Each returns its local top-k
    in (distance, index) order; the driver merges them and returns exactly the single-process
    value (and per-query APs with ``return_ap``)."""
    k = check_int(k, "k", lo=1)
    q, d, ql, dl = metrics._prepare(query_codes, db_codes, query_labels, db_labels)
    _, rel = _sharded_topk(q, d, ql, dl, k, shards)
    m, ap = _map_from_relevance(rel)
    return (m, ap) if return_ap else m


def t_map_at_k(query_codes, db_codes, target_labels, db_labels, k: int = 5000, *, shards: int | None = None,
               return_ap: bool = False):
    """:func:`saat.metrics.t_map_at_k` (relevance from the target labels), sharded like
    :func:`map_at_k`; exactly the single-process value."""
    k = check_int(k, "k", lo=1)
    q, d, tl, dl = metrics._prepare(query_codes, db_codes, target_labels, db_labels, qlab_name="target_labels")
    _, rel = _sharded_topk(q, d, tl, dl, k, shards)
    m, ap = _map_from_relevance(rel)
    return (m, ap) if return_ap else m


def hamming_rank(query_codes, db_codes, k: int, *, shards: int | None = None) -> np.ndarray:
    """:func:`saat.metrics.hamming_rank` with the database split over Ray actors: the same
    (nq, min(k, N)) int64 indices, nearest first, ties by ascending database index."""
    k = check_int(k, "k", lo=1)
    q, d = metrics._code_pair(query_codes, db_codes)
    idx, _ = _sharded_topk(q, d, None, None, k, shards)
    return idx
