"""MAP@5000 benchmark: saat (Swift counting-sort ranking) vs a numpy stable-sort reference vs
faiss-cpu IndexBinaryFlat (skipped when faiss is not importable).

Workload: 1,000 queries x 100,000 random 64-bit ±1 codes, 20-class multi-hot labels (each class
present with probability 0.1), k = 5000. All three rank by (Hamming distance, database index);
the rankings are asserted identical and the MAPs equal. Times are medians of --repeats runs.

    PYTHONPATH=python python3 benchmarks/bench_map.py [--repeats 3] [--queries 1000] [--db 100000]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import saat
from saat import metrics


def median_time(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def ap_from_ranking(order, ql, dl):
    """Per-query AP of ranked database indices `order` (nq, k), relevance = shared label."""
    rel = np.empty(order.shape, dtype=bool)
    for i in range(order.shape[0]):
        rel[i] = (dl[order[i]] @ ql[i]) > 0
    found = np.cumsum(rel, axis=1)
    ranks = np.arange(1, order.shape[1] + 1)
    num = np.where(rel, found / ranks, 0.0).sum(axis=1)
    total = found[:, -1]
    return np.where(total > 0, num / np.maximum(total, 1), 0.0)


def numpy_rank(q, d, k, batch=50):
    """Reference: distances (K − q·d)/2 by float32 GEMM, then a stable sort (radix sort on uint8)."""
    bits = q.shape[1]
    qf, df = q.astype(np.float32), d.astype(np.float32)
    out = np.empty((q.shape[0], k), dtype=np.int64)
    for s in range(0, q.shape[0], batch):
        dist = ((bits - qf[s:s + batch] @ df.T) * 0.5).astype(np.uint8)
        out[s:s + batch] = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--db", type=int, default=100_000)
    ap.add_argument("--bits", type=int, default=64)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    q = np.where(rng.random((args.queries, args.bits)) > 0.5, 1, -1).astype(np.int8)
    d = np.where(rng.random((args.db, args.bits)) > 0.5, 1, -1).astype(np.int8)
    ql = (rng.random((args.queries, args.classes)) < 0.1).astype(np.uint8)
    dl = (rng.random((args.db, args.classes)) < 0.1).astype(np.uint8)
    k = args.k
    print(f"saat {saat.__version__}, {os.cpu_count()} CPUs; {args.queries} queries x {args.db} codes, "
          f"{args.bits} bits, {args.classes} classes, k = {k}, median of {args.repeats}")

    rows = []
    t_saat, (m_saat, ap_saat) = median_time(lambda: metrics.map_at_k(q, d, ql, dl, k, return_ap=True), args.repeats)
    t_saat1, m_saat1 = median_time(lambda: metrics.map_at_k(q, d, ql, dl, k, threads=1), args.repeats)
    t_rank, r_saat = median_time(lambda: metrics.hamming_rank(q, d, k), args.repeats)
    assert m_saat1 == m_saat
    rows += [("saat map_at_k (all CPUs)", t_saat), ("saat map_at_k (1 thread)", t_saat1),
             ("saat hamming_rank", t_rank)]

    t_np_rank, r_np = median_time(lambda: numpy_rank(q, d, k), args.repeats)
    t_np_ap, ap_np = median_time(lambda: ap_from_ranking(r_np, ql, dl), 1)
    np.testing.assert_array_equal(r_saat, r_np)
    np.testing.assert_allclose(ap_saat, ap_np, rtol=1e-12, atol=1e-15)
    rows += [("numpy stable-sort MAP (rank + AP)", t_np_rank + t_np_ap), ("numpy ranking only", t_np_rank)]

    try:
        import faiss
    except ImportError:
        faiss = None
        print("faiss: not importable, skipped (pip install faiss-cpu to include it)")
    if faiss is not None:
        def faiss_rank():
            index = faiss.IndexBinaryFlat(args.bits)
            index.add(np.packbits(d > 0, axis=1))
            _, ids = index.search(np.packbits(q > 0, axis=1), k)
            return ids
        t_f_rank, r_f = median_time(faiss_rank, args.repeats)
        np.testing.assert_array_equal(r_saat, r_f)
        rows += [("faiss IndexBinaryFlat MAP (search + numpy AP)", t_f_rank + t_np_ap),
                 ("faiss IndexBinaryFlat search only", t_f_rank)]
        print(f"faiss {faiss.__version__}: rankings identical to saat")
    print("rankings: saat == numpy stable argsort" + (" == faiss" if faiss is not None else ""))
    print(f"MAP@{k} = {m_saat:.6f}\n")
    print(f"{'':48s} {'seconds':>9s} {'vs saat map':>12s}")
    for name, t in rows:
        print(f"{name:48s} {t:9.4f} {t / t_saat:11.1f}x")


if __name__ == "__main__":
    main()
