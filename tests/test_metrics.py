"""saat.metrics against independent numpy references (stable argsort by (distance, index))."""
import numpy as np
import pytest

import saat
from saat import metrics


# ------------------------------------------------------------------ independent numpy references

def ref_order(q, d):
    """Stable ranking: argsort of Hamming distances, ties by ascending database index."""
    q = np.asarray(q, np.int64)
    d = np.asarray(d, np.int64)
    dist = (q.shape[1] - q @ d.T) // 2
    return np.argsort(dist, axis=1, kind="stable")


def ref_relevance(ql, dl):
    return (np.asarray(ql, np.float64) @ np.asarray(dl, np.float64).T) > 0


def ref_ap(q, d, ql, dl, k):
    order = ref_order(q, d)
    rel = ref_relevance(ql, dl)
    aps = []
    for i in range(q.shape[0]):
        g = rel[i, order[i]][:k]
        hits = np.flatnonzero(g) + 1
        aps.append(0.0 if hits.size == 0 else float(np.mean(np.arange(1, hits.size + 1) / hits)))
    return np.array(aps)


def ref_pr(q, d, ql, dl):
    order = ref_order(q, d)
    rel = ref_relevance(ql, dl)
    r = np.array([i * 0.01 for i in range(1, 101)])        # SAAT: r_arr = i * interval
    p = np.zeros(100)
    for i in range(q.shape[0]):
        pos = np.flatnonzero(rel[i, order[i]]) + 1           # 1-based ranks of relevant items
        m = (pos.size * r).astype(np.int32)
        for l in range(100):
            if m[l] > 0:
                p[l] += m[l] / pos[m[l] - 1]
    return p / q.shape[0], r


def ref_p_at_n(q, d, ql, dl, ns):
    order = ref_order(q, d)
    rel = ref_relevance(ql, dl)
    out = np.zeros(len(ns))
    for i in range(q.shape[0]):
        g = rel[i, order[i]]
        for t, n in enumerate(ns):
            ne = min(n, d.shape[0])
            out[t] += g[:ne].sum() / ne
    return out / q.shape[0]


def calc_top_map_deephash(qB, rB, query_label, retrieval_label, topk, kind="quicksort"):
    """CalcTopMap as in DeepHash-pytorch utils/tools.py (and CgAT / SAAT): ranking by
    0.5·(K − qB·rBᵀ), AP over the top-k, queries without hits add 0 but are counted."""
    num_query = query_label.shape[0]
    total = 0.0
    for i in range(num_query):
        gnd = (query_label[i] @ retrieval_label.T > 0).astype(np.float32)
        hamm = 0.5 * (qB.shape[1] - qB[i] @ rB.T)
        ind = np.argsort(hamm, kind=kind)
        tgnd = gnd[ind][:topk]
        tsum = int(tgnd.sum())
        if tsum == 0:
            continue
        count = np.linspace(1, tsum, tsum)
        tindex = np.asarray(np.where(tgnd == 1)).ravel() + 1.0
        total += np.mean(count / tindex)
    return total / num_query


def random_data(rng, nq, nd, bits, classes, p=0.15, dtype=np.int8):
    q = np.where(rng.random((nq, bits)) > 0.5, 1, -1).astype(dtype)
    d = np.where(rng.random((nd, bits)) > 0.5, 1, -1).astype(dtype)
    ql = (rng.random((nq, classes)) < p).astype(np.uint8)
    dl = (rng.random((nd, classes)) < p).astype(np.uint8)
    return q, d, ql, dl


# Crafted 4-bit case with ties (hand-computed in Tests/SAATCoreTests/MetricsTests.swift too).
DB = np.array([[1, 1, 1, 1], [-1, 1, 1, 1], [1, 1, 1, 1], [-1, -1, 1, 1], [1, -1, 1, 1]], np.int8)
DBL = np.array([[0, 1], [1, 0], [1, 1], [1, 0], [0, 1]], np.uint8)
Q = np.array([[1, 1, 1, 1], [-1, -1, -1, -1]], np.int8)
QL = np.array([[1, 0], [0, 1]], np.uint8)
AP1 = (1 / 2 + 2 / 3 + 3 / 5) / 3     # q1 relevant at ranks 2, 3, 5 of 0,2,1,4,3
AP2 = (1 / 3 + 2 / 4 + 3 / 5) / 3     # q2 relevant at ranks 3, 4, 5 of 3,1,4,0,2


# ---------------------------------------------------------------------------------- crafted

def test_crafted_ties_hand_computed():
    np.testing.assert_array_equal(metrics.hamming_rank(Q, DB, 5), [[0, 2, 1, 4, 3], [3, 1, 4, 0, 2]])
    m, ap = metrics.map_at_k(Q, DB, QL, DBL, k=5, return_ap=True)
    assert ap.dtype == np.float64 and ap.shape == (2,)
    np.testing.assert_allclose(ap, [AP1, AP2], rtol=0, atol=1e-15)
    assert m == pytest.approx((AP1 + AP2) / 2, abs=1e-15)
    # k = 3: q1 keeps ranks 2, 3; q2 keeps rank 3
    _, ap3 = metrics.map_at_k(Q, DB, QL, DBL, k=3, return_ap=True)
    np.testing.assert_allclose(ap3, [(1 / 2 + 2 / 3) / 2, 1 / 3], atol=1e-15)


def test_k_larger_than_database_is_full_map():
    a = metrics.map_at_k(Q, DB, QL, DBL, k=5)
    assert metrics.map_at_k(Q, DB, QL, DBL, k=10**6) == a
    assert metrics.hamming_rank(Q, DB, 100).shape == (2, 5)


def test_no_relevant_query_counts_as_zero_and_all_relevant_is_one():
    ql = np.array([[0, 0], [1, 1]], np.uint8)     # q1 has no label, q2 shares with every item
    m, ap = metrics.map_at_k(Q, DB, ql, DBL, k=5, return_ap=True)
    np.testing.assert_array_equal(ap, [0.0, 1.0])
    assert m == 0.5
    # no relevant item within the top k while some exist further down: AP 0, still counted
    m1, ap1 = metrics.map_at_k(Q, DB, QL, DBL, k=1, return_ap=True)
    np.testing.assert_array_equal(ap1, [0.0, 0.0])
    assert m1 == 0.0


def test_one_query_and_pr_hand_computed():
    p, r = metrics.pr_curve(Q[:1], DB, QL[:1], DBL)
    assert p.shape == r.shape == (100,) and p.dtype == np.float64
    np.testing.assert_array_equal(r, np.arange(1, 101) * 0.01)
    assert p[32] == 0 and p[33] == 0.5 and p[65] == 0.5          # m = int(3 r)
    assert p[66] == pytest.approx(2 / 3) and p[99] == pytest.approx(3 / 5)
    pn = metrics.precision_at_n(Q[:1], DB, QL[:1], DBL, n=[1, 2, 3, 5, 50])
    np.testing.assert_allclose(pn, [0, 1 / 2, 2 / 3, 3 / 5, 3 / 5])   # N > N_db: whole database


def test_pr_float_truncation_mirrors_saat():
    # n_rel = 100 at recall 0.29: int(100 * (29 * 0.01)) = 28, so P = 28 / rank(28th relevant).
    nd = 200
    d = np.ones((nd, 8), np.int8)
    d[1::2, 0] = -1                        # odd items at distance 1 from the all-ones query
    dl = np.zeros((nd, 1), np.uint8)
    dl[::2] = 1                            # even items (distance 0, ranked first) relevant
    q = np.ones((1, 8), np.int8)
    p, _ = metrics.pr_curve(q, d, np.ones((1, 1), np.uint8), dl)
    assert int(100 * (29 * 0.01)) == 28
    np.testing.assert_array_equal(p, np.ones(100))    # all relevant come first: precision 1 everywhere
    # all at distance 0, relevant items at even indices: the m-th relevant has rank 2m − 1, so
    # P(r) = m / (2m − 1) with m = int(100 r); at r = 0.29 that is 28/55, not 29/57.
    d2 = np.ones((nd, 8), np.int8)
    p2, _ = metrics.pr_curve(q, d2, np.ones((1, 1), np.uint8), dl)
    ref, _ = ref_pr(q, d2, np.ones((1, 1), np.uint8), dl)
    np.testing.assert_array_equal(p2, ref)
    assert p2[28] == 28 / 55
    assert p2[29] == 30 / 59


# ---------------------------------------------------------------------------------- random

@pytest.mark.parametrize("bits,classes,nq,nd,k", [
    (64, 20, 40, 2000, 500), (16, 5, 30, 700, 100), (48, 38, 25, 1500, 5000),
    (128, 80, 20, 900, 300), (100, 70, 10, 400, 37), (8, 3, 12, 300, 7),
])
def test_random_against_numpy_reference(bits, classes, nq, nd, k):
    rng = np.random.default_rng(bits * 1000 + classes)
    q, d, ql, dl = random_data(rng, nq, nd, bits, classes)
    order = ref_order(q, d)
    np.testing.assert_array_equal(metrics.hamming_rank(q, d, k), order[:, :min(k, nd)])
    m, ap = metrics.map_at_k(q, d, ql, dl, k, return_ap=True)
    ref = ref_ap(q, d, ql, dl, k)
    np.testing.assert_allclose(ap, ref, rtol=1e-13, atol=1e-15)
    assert m == pytest.approx(ref.mean(), rel=1e-13)
    p, r = metrics.pr_curve(q, d, ql, dl)
    pref, rref = ref_pr(q, d, ql, dl)
    np.testing.assert_allclose(p, pref, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(r, rref)
    ns = [1, 10, 100, 333, nd, nd + 17]
    np.testing.assert_allclose(metrics.precision_at_n(q, d, ql, dl, n=ns), ref_p_at_n(q, d, ql, dl, ns),
                               rtol=1e-12, atol=1e-15)


def test_default_precision_at_n_grid():
    rng = np.random.default_rng(5)
    q, d, ql, dl = random_data(rng, 15, 1200, 32, 10)
    got = metrics.precision_at_n(q, d, ql, dl)
    assert got.shape == (91,)
    np.testing.assert_allclose(got, ref_p_at_n(q, d, ql, dl, list(range(100, 1001, 10))), rtol=1e-12)
    assert metrics.precision_at_n(q, d, ql, dl, n=100).shape == (1,)


def test_t_map_uses_target_labels():
    rng = np.random.default_rng(11)
    q, d, ql, dl = random_data(rng, 20, 800, 32, 12)
    tl = (rng.random((20, 12)) < 0.2).astype(np.uint8)
    tm, tap = metrics.t_map_at_k(q, d, tl, dl, 200, return_ap=True)
    np.testing.assert_allclose(tap, ref_ap(q, d, tl, dl, 200), rtol=1e-13, atol=1e-15)
    assert tm == metrics.map_at_k(q, d, tl, dl, 200)
    assert tm != metrics.map_at_k(q, d, ql, dl, 200)


def test_deephash_calc_top_map_agreement():
    rng = np.random.default_rng(3)
    q, d, ql, dl = random_data(rng, 30, 1000, 32, 10, dtype=np.float32)   # float ±1 as encode gives
    for k in (50, 500, 1000):
        got = metrics.map_at_k(q, d, ql, dl, k)
        assert got == pytest.approx(calc_top_map_deephash(q, d, ql, dl, k, kind="stable"), rel=1e-12)
    # Tie-free construction: db item j is the query with its first j bits flipped (distinct
    # distances), shuffled, so even numpy's default unstable argsort ranks identically.
    bits = 40
    base = np.where(rng.random(bits) > 0.5, 1, -1).astype(np.float64)
    db = np.tile(base, (bits + 1, 1))
    for j in range(bits + 1):
        db[j, :j] *= -1
    perm = rng.permutation(bits + 1)
    db = db[perm]
    qs = np.stack([base, -base])                   # -base sees distances bits - j: also distinct
    dbl = (rng.random((bits + 1, 6)) < 0.3).astype(np.float32)
    qsl = np.array([[1, 0, 1, 0, 0, 0], [0, 1, 0, 0, 1, 1]], np.float32)
    for k in (1, 7, 20, bits + 1):
        assert metrics.map_at_k(qs, db, qsl, dbl, k) == pytest.approx(
            calc_top_map_deephash(qs, db, qsl, dbl, k), rel=1e-12)


def test_input_dtypes_are_equivalent():
    rng = np.random.default_rng(8)
    q, d, ql, dl = random_data(rng, 10, 300, 24, 6)
    ref = metrics.map_at_k(q, d, ql, dl, 50)
    for ct in (np.float32, np.float64, np.int64, np.int32):
        assert metrics.map_at_k(q.astype(ct), d.astype(ct), ql, dl, 50) == ref
    assert metrics.map_at_k(q, d, ql.astype(bool), dl.astype(bool), 50) == ref
    assert metrics.map_at_k(q, d, ql.astype(np.float32), dl.astype(np.float64), 50) == ref
    assert metrics.map_at_k(q.tolist(), d, ql.tolist(), dl, 50) == ref
    assert metrics.map_at_k(np.asfortranarray(q), d[::1], ql, dl, 50) == ref
    assert metrics.map_at_k(q, d, ql, dl, 50, threads=1) == metrics.map_at_k(q, d, ql, dl, 50, threads=2)


def test_threads_do_not_change_results_on_parallel_sizes():
    rng = np.random.default_rng(9)
    q, d, ql, dl = random_data(rng, 200, 8000, 64, 20)      # 1.6M pairs: above the parallel threshold
    m1, ap1 = metrics.map_at_k(q, d, ql, dl, 1000, return_ap=True, threads=1)
    m2, ap2 = metrics.map_at_k(q, d, ql, dl, 1000, return_ap=True, threads=2)
    assert m1 == m2
    np.testing.assert_array_equal(ap1, ap2)
    np.testing.assert_array_equal(metrics.pr_curve(q, d, ql, dl, threads=1)[0], metrics.pr_curve(q, d, ql, dl)[0])
    np.testing.assert_array_equal(metrics.hamming_rank(q, d, 300, threads=2), ref_order(q, d)[:, :300])


# ---------------------------------------------------------------------------------- perceptibility

def test_perceptibility_against_loops():
    rng = np.random.default_rng(4)
    x = rng.random((3, 2, 7, 5))
    xa = np.clip(x + rng.uniform(-8 / 255, 8 / 255, x.shape), 0, 1)
    got = metrics.perceptibility(xa, x)
    linf, l2 = [], []
    for n in range(3):
        for c in range(2):
            m = xa[n, c] - x[n, c]
            linf.append(max(sum(abs(v) for v in row) for row in m))
            l2.append(np.linalg.svd(m, compute_uv=False)[0])
    assert got.linf == pytest.approx(np.mean(linf), rel=1e-12)
    assert got.l2 == pytest.approx(np.mean(l2), rel=1e-12)
    assert got.mse == pytest.approx(np.mean((xa - x) ** 2), rel=1e-12)
    z = metrics.perceptibility(x, x)
    assert tuple(z) == (0.0, 0.0, 0.0)


def test_perceptibility_bad_input():
    with pytest.raises(ValueError, match="'x'.*shape"):
        metrics.perceptibility(np.zeros((2, 3, 4)), np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="'x_adv'.*2 dims"):
        metrics.perceptibility(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="'x_adv'.*finite"):
        metrics.perceptibility(np.full((2, 2), np.nan), np.zeros((2, 2)))


# ---------------------------------------------------------------------------------- bad input

def test_codes_must_be_plus_minus_one():
    bad = Q.copy()
    bad[1, 2] = 0
    with pytest.raises(ValueError, match="'query_codes'.*-1 or \\+1.*got 0 at flat index 6"):
        metrics.map_at_k(bad, DB, QL, DBL)                       # int8: checked by the core
    with pytest.raises(ValueError, match="'db_codes'.*-1 or \\+1.*0.5"):
        metrics.map_at_k(Q, DB.astype(np.float32) * 0.5, QL, DBL)
    with pytest.raises(ValueError, match="'query_codes'.*-1 or \\+1"):
        metrics.hamming_rank(np.full((1, 4), 2.0), DB, 3)
    with pytest.raises(TypeError, match="'query_codes'.*dtype bool"):
        metrics.hamming_rank(Q > 0, DB, 3)
    with pytest.raises(ValueError, match="'db_codes'.*nan"):
        metrics.hamming_rank(Q, np.full((2, 4), np.nan), 3)


def test_shape_and_label_errors_name_the_argument():
    with pytest.raises(ValueError, match="'db_codes'.*4 bits like query_codes"):
        metrics.map_at_k(Q, np.ones((5, 6), np.int8), QL, DBL)
    with pytest.raises(ValueError, match="'query_labels'.*2 rows"):
        metrics.map_at_k(Q, DB, QL[:1], DBL)
    with pytest.raises(ValueError, match="'db_labels'.*5 rows"):
        metrics.pr_curve(Q, DB, QL, DBL[:4])
    with pytest.raises(ValueError, match="'db_labels'.*2 classes"):
        metrics.precision_at_n(Q, DB, QL, np.ones((5, 3), np.uint8))
    with pytest.raises(ValueError, match="'target_labels'.*2 rows"):
        metrics.t_map_at_k(Q, DB, QL[:1], DBL)
    with pytest.raises(ValueError, match="'query_labels'.*0 or 1.*2"):
        metrics.map_at_k(Q, DB, QL * 2, DBL)                      # uint8: checked by the core
    with pytest.raises(ValueError, match="'db_labels'.*0 or 1"):
        metrics.map_at_k(Q, DB, QL, DBL.astype(np.float32) * 0.5)
    with pytest.raises(ValueError, match="'query_codes'.*2-d"):
        metrics.map_at_k(Q[0], DB, QL, DBL)
    with pytest.raises(ValueError, match="'query_codes'.*at least one query"):
        metrics.map_at_k(Q[:0], DB, QL[:0], DBL)
    with pytest.raises(ValueError, match="'db_codes'.*at least one database"):
        metrics.hamming_rank(Q, DB[:0], 1)


def test_scalar_argument_errors():
    with pytest.raises(ValueError, match="'k'.*>= 1"):
        metrics.map_at_k(Q, DB, QL, DBL, k=0)
    with pytest.raises(TypeError, match="'k'.*int"):
        metrics.map_at_k(Q, DB, QL, DBL, k=5.0)
    with pytest.raises(ValueError, match="'k'"):
        metrics.hamming_rank(Q, DB, 0)
    with pytest.raises(ValueError, match="'n'.*>= 1"):
        metrics.precision_at_n(Q, DB, QL, DBL, n=[5, 0])
    with pytest.raises(ValueError, match="'n'.*at least one"):
        metrics.precision_at_n(Q, DB, QL, DBL, n=[])
    with pytest.raises(ValueError, match="'threads'"):
        metrics.map_at_k(Q, DB, QL, DBL, threads=0)


def test_core_entry_points_check_arguments():
    ap = np.empty(2)
    assert saat._core.map_at_k(Q, DB, QL, DBL, 5, ap) == pytest.approx((AP1 + AP2) / 2)
    with pytest.raises(TypeError, match="'query_codes'.*int8.*float32"):
        saat._core.map_at_k(Q.astype(np.float32), DB, QL, DBL, 5)
    with pytest.raises(TypeError, match="'query_labels'.*uint8.*float64"):
        saat._core.map_at_k(Q, DB, QL.astype(np.float64), DBL, 5)
    with pytest.raises(ValueError, match="'db_codes'.*shape"):
        saat._core.map_at_k(Q, np.ones((5, 3), np.int8), QL, DBL, 5)
    with pytest.raises(ValueError, match="'query_labels'.*shape"):
        saat._core.map_at_k(Q, DB, QL[:1], DBL, 5)
    with pytest.raises(ValueError, match="'db_labels'.*shape"):
        saat._core.map_at_k(Q, DB, QL, np.ones((5, 3), np.uint8), 5)
    with pytest.raises(ValueError, match="'k'.*k >= 1"):
        saat._core.map_at_k(Q, DB, QL, DBL, 0)
    with pytest.raises(ValueError, match="'ap_out'.*shape"):
        saat._core.map_at_k(Q, DB, QL, DBL, 5, np.empty(3))
    with pytest.raises(TypeError, match="'ap_out'.*float64.*float32"):
        saat._core.map_at_k(Q, DB, QL, DBL, 5, np.empty(2, np.float32))
    ro = np.empty(2)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="'ap_out'.*read-only"):
        saat._core.map_at_k(Q, DB, QL, DBL, 5, ro)
    with pytest.raises(ValueError, match="'threads'"):
        saat._core.map_at_k(Q, DB, QL, DBL, 5, threads=-1)
    with pytest.raises(ValueError, match="'out'.*shape"):
        saat._core.hamming_rank(Q, DB, 3, np.empty((2, 4), np.int64))
    with pytest.raises(ValueError, match="'precision_out'.*shape"):
        saat._core.pr_curve(Q, DB, QL, DBL, np.empty(10), np.empty(100))
    with pytest.raises(ValueError, match="'n'.*>= 1"):
        saat._core.precision_at_n(Q, DB, QL, DBL, np.array([0], np.int64), np.empty(1))
    with pytest.raises(TypeError, match="missing required argument 'k'"):
        saat._core.map_at_k(Q, DB, QL, DBL)


# ------------------------------------------------------------------------------ collapse

def test_code_spread_counts_distinct_codes_and_the_commonest_share():
    c = np.array([[1, -1, 1], [1, -1, 1], [-1, -1, 1], [1, -1, 1], [1, 1, 1]], np.int8)
    assert metrics.code_spread(c) == (3, 0.6)
    assert metrics.code_spread(c.astype(np.float64)) == (3, 0.6)
    assert metrics.code_spread(c[:1]) == (1, 1.0)
    with pytest.raises(ValueError, match="'codes'.*at least one code"):
        metrics.code_spread(np.ones((0, 3), np.int8))
    with pytest.raises(ValueError, match="'codes'.*-1 or \\+1"):
        metrics.code_spread(np.zeros((2, 3)))


def test_warn_if_collapsed_warns_only_above_half(recwarn):
    two_of_four = np.array([[1, 1], [1, 1], [-1, 1], [1, -1]], np.int8)
    assert metrics.warn_if_collapsed(two_of_four, "x") == (3, 0.5)
    assert not recwarn.list
    three_of_four = np.array([[1, 1], [1, 1], [-1, 1], [1, 1]], np.int8)
    with pytest.warns(metrics.CollapseWarning, match=r"my model: 3 of 4 codes \(75%\) are one code \(2 distinct"):
        assert metrics.warn_if_collapsed(three_of_four, "my model") == (2, 0.75)
