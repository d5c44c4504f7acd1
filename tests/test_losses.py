"""saat.losses against independent numpy implementations written from the formulas of
/work/shared/notes/method.md §1 (SAAT constants; DSDH and DCH as in CgAT)."""
import numpy as np
import pytest

import saat
from saat import losses
from saat.losses import LOSSES, hash_loss


# ---------------------------------------------------------------- numpy references (float64)

def softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def sim(y, Y):
    return (y @ Y.T > 0).astype(np.float64)


def ref_dpsh(u, y, idx, Y, U):
    th = 0.5 * u @ U.T
    s = sim(y, Y)
    b, n = th.shape
    return ((softplus(th) - s * th).sum() + 50 * ((np.sign(u) - u) ** 2).sum()) / (b * n)


def ref_dph(u, y, idx, Y, U):
    k = u.shape[1]
    return ((u @ U.T / k - (2 * sim(y, Y) - 1)) ** 2).mean()


def ref_hashnet(u, y, idx, Y, U):
    th = 10.0 / u.shape[1] * u @ U.T
    s = sim(y, Y)
    l = softplus(th) - s * th
    s1, s0 = s.sum(), (1 - s).sum()
    S = s1 + s0
    w = np.where(s > 0, S / s1 if s1 else 0, S / s0 if s0 else 0)
    return (w * l).sum() / S


def ref_dsdh_state(Y, U, mu=1.0, nu=1.0, eta=55.0, iters=10):
    """B = sign(U), then the DCC iterations; B is N×K here (CgAT stores K×N)."""
    B = np.sign(U)
    k = U.shape[1]
    for _ in range(iters):
        W = np.linalg.solve(B.T @ B + nu / mu * np.eye(k), B.T @ Y)       # K×C
        P = Y @ W.T + eta / mu * U                                        # N×K
        M = W @ W.T
        for i in range(k):
            others = B @ M[:, i] - B[:, i] * M[i, i]
            B[:, i] = np.sign(P[:, i] - others)
    return B, W


def ref_dsdh(u, y, idx, Y, U):
    B, W = ref_dsdh_state(Y, U)
    th = 0.5 * u @ U.T
    s = sim(y, Y)
    like = (softplus(th) - s * th).mean()
    cl = ((y - B[idx] @ W) ** 2).mean()
    return like + cl + (W ** 2).mean()


def ref_dch(u, y, idx, Y, U, gamma=20.0, lam=0.1):
    b, k = u.shape

    def dist(a, c):
        cos = (a @ c.T) / np.maximum(np.linalg.norm(a, axis=1)[:, None] * np.linalg.norm(c, axis=1)[None, :], 1e-4)
        return (1 - np.minimum(cos, 0.99)) * k / 2

    s = sim(y, y)
    if s.sum() != 0 and (1 - s).sum() != 0:
        w = s * s.size / s.sum() + (1 - s) * s.size / (1 - s).sum()
    else:
        w = 1.0
    d = dist(u, u)
    cauchy = w * (s * np.log(d / gamma) + np.log(1 + gamma / d))
    q = np.log(1 + dist(np.abs(u), np.ones((1, k))) / gamma)
    return cauchy.mean() + lam * q.mean()


def hadamard(k):
    h = np.ones((1, 1))
    while h.shape[0] < k:
        h = np.block([[h, h], [h, -h]])
    return h


def ref_csq(u, y, idx, Y, U, lam=0.05):
    k = u.shape[1]
    T = np.concatenate([hadamard(k), -hadamard(k)])[: y.shape[1]]
    csum = y @ T
    assert np.all(csum != 0), "the reference cannot know the seeded random centre"
    c = np.where(csum > 0, 1.0, -1.0)
    p, t = (u + 1) / 2, (c + 1) / 2
    bce = -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log(1 - p), -100))
    return bce.mean() + lam * ((np.abs(u) - 1) ** 2).mean()


REFS = {"dpsh": ref_dpsh, "dph": ref_dph, "hashnet": ref_hashnet, "dsdh": ref_dsdh, "dch": ref_dch, "csq": ref_csq}


def make_data(k, seed, b=5, n=12, c=5, odd_labels=False):
    rng = np.random.default_rng(seed)
    Y = np.zeros((n, c), np.float32)
    for i in range(n):
        m = rng.choice([1, 3]) if odd_labels else rng.integers(1, 4)
        Y[i, rng.choice(c, size=m, replace=False)] = 1
    U = rng.uniform(-1, 1, (n, k)).astype(np.float32)
    u = (rng.uniform(0.1, 0.9, (b, k)) * rng.choice([-1, 1], (b, k))).astype(np.float32)
    idx = rng.permutation(n)[:b].astype(np.int64)
    return u, np.ascontiguousarray(Y[idx]), idx, Y, U


CASES = [(name, k) for name in LOSSES for k in ((8, 16) if name == "csq" else (8, 12))]


# ---------------------------------------------------------------- values and gradients

def test_losses_tuple():
    assert LOSSES == ("dpsh", "dph", "hashnet", "dsdh", "dch", "csq")
    assert losses.__all__ == ["LOSSES", "hash_loss"]


@pytest.mark.parametrize("name,k", CASES)
def test_value_matches_numpy_reference(name, k):
    for seed in range(3):
        u, y, idx, Y, U = make_data(k, seed=100 * k + seed, odd_labels=(name == "csq"))
        U0 = U.copy()
        loss, grad = hash_loss(name, u, y, idx, Y, U)
        ref = REFS[name](u.astype(np.float64), y.astype(np.float64), idx, Y.astype(np.float64), U.astype(np.float64))
        assert isinstance(loss, float)
        assert grad.shape == u.shape and grad.dtype == np.float32
        assert loss == pytest.approx(ref, rel=1e-4, abs=1e-7)
        np.testing.assert_array_equal(U, U0)   # memory untouched without write_memory


@pytest.mark.parametrize("name,k", CASES)
def test_gradient_matches_numpy_central_differences(name, k):
    u, y, idx, Y, U = make_data(k, seed=7 * k + len(name), odd_labels=(name == "csq"))
    _, grad = hash_loss(name, u, y, idx, Y, U)
    f = REFS[name]
    u64, y64, Y64, U64 = (a.astype(np.float64) for a in (u, y, Y, U))
    h = 1e-6
    scale = np.abs(grad).max()
    for (i, j) in [(0, 0), (1, 3), (4, k - 1), (2, k // 2)]:
        up, um = u64.copy(), u64.copy()
        up[i, j] += h
        um[i, j] -= h
        fd = (f(up, y64, idx, Y64, U64) - f(um, y64, idx, Y64, U64)) / (2 * h)
        # float32 products in the core: agreement to ~1e-4 of the largest gradient entry.
        assert abs(fd - grad[i, j]) <= 2e-4 * scale + 1e-6, (name, i, j, fd, grad[i, j])


def test_write_memory_updates_rows_and_uses_them():
    u, y, idx, Y, U = make_data(8, seed=3)
    U_written = U.copy()
    U_written[idx] = u
    expect_loss, expect_grad = hash_loss("dpsh", u, y, idx, Y, U_written)
    loss, grad = hash_loss("dpsh", u, y, idx, Y, U, write_memory=True)
    np.testing.assert_array_equal(U, U_written)
    assert loss == expect_loss
    np.testing.assert_array_equal(grad, expect_grad)
    ref = ref_dpsh(u.astype(np.float64), y, idx, Y, U_written.astype(np.float64))
    assert loss == pytest.approx(ref, rel=1e-4)


def test_csq_seed_only_matters_for_zero_centre_sums():
    u, y, idx, Y, U = make_data(8, seed=4, odd_labels=True)
    assert hash_loss("csq", u, y, idx, Y, U, seed=1)[0] == hash_loss("csq", u, y, idx, Y, U, seed=2)[0]
    # Classes 0 and 8 of [H; -H] cancel: with C = 9 labels {0, 8} sum to zero -> seeded random centre.
    Y9 = np.zeros((4, 9), np.float32)
    Y9[:, [0, 8]] = 1
    u4 = u[:4].copy()
    i4 = np.arange(4, dtype=np.int64)
    U4 = np.zeros((4, 8), np.float32)
    a = hash_loss("csq", u4, Y9, i4, Y9, U4, seed=1)[0]
    assert a == hash_loss("csq", u4, Y9, i4, Y9, U4, seed=1)[0]
    assert any(hash_loss("csq", u4, Y9, i4, Y9, U4, seed=s)[0] != a for s in range(2, 6))


def test_csq_more_classes_than_two_k_uses_extra_centres():
    rng = np.random.default_rng(0)
    Y = np.eye(20, dtype=np.float32)            # one-hot, 20 classes > 2K = 8
    u = (rng.uniform(0.1, 0.9, (20, 4)) * rng.choice([-1, 1], (20, 4))).astype(np.float32)
    idx = np.arange(20, dtype=np.int64)
    loss, grad = hash_loss("csq", u, Y, idx, Y, np.zeros((20, 4), np.float32), seed=3)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    # First 8 classes: the numpy reference (Hadamard rows) holds for them alone.
    l8, _ = hash_loss("csq", u[:8].copy(), Y[:8].copy(), idx[:8].copy(), Y, np.zeros((20, 4), np.float32), seed=3)
    assert l8 == pytest.approx(ref_csq(u[:8].astype(np.float64), Y[:8, :8].astype(np.float64), None, None, None), rel=1e-5)


# ---------------------------------------------------------------- bad arguments

def good(k=8):
    return make_data(k, seed=9)


def test_unknown_name():
    u, y, idx, Y, U = good()
    with pytest.raises(ValueError, match="'name'.*dpsh.*got 'nope'"):
        hash_loss("nope", u, y, idx, Y, U)
    g = np.empty_like(u)
    with pytest.raises(ValueError, match="'name'.*got 'nope'"):
        saat._core.hash_loss("nope", u, y, idx, Y, U, g)


def test_wrong_dtypes_name_the_argument():
    u, y, idx, Y, U = good()
    with pytest.raises(TypeError, match="'u'.*float32.*float64"):
        hash_loss("dph", u.astype(np.float64), y, idx, Y, U)
    with pytest.raises(TypeError, match="'indices'.*int64.*int32"):
        hash_loss("dph", u, y, idx.astype(np.int32), Y, U)
    with pytest.raises(TypeError, match="'u'"):
        hash_loss("dph", u.tolist(), y, idx, Y, U)
    g = np.empty_like(u)
    with pytest.raises(TypeError, match="'train_labels'.*float32.*float64"):
        saat._core.hash_loss("dph", u, y, idx, Y.astype(np.float64), U, g)
    with pytest.raises(TypeError, match="'indices'.*int64"):
        saat._core.hash_loss("dph", u, y, idx.astype(np.int32), Y, U, g)
    with pytest.raises(TypeError, match="'grad_out'.*float32"):
        saat._core.hash_loss("dph", u, y, idx, Y, U, g.astype(np.float64))


def test_shape_mismatches_name_the_argument():
    u, y, idx, Y, U = good()
    with pytest.raises(ValueError, match="'labels'.*shape"):
        hash_loss("dpsh", u, y[:, :4].copy(), idx, Y, U)
    with pytest.raises(ValueError, match="'indices'.*shape"):
        hash_loss("dpsh", u, y, idx[:3].copy(), Y, U)
    with pytest.raises(ValueError, match="'memory'.*shape"):
        hash_loss("dpsh", u, y, idx, Y, U[:, :7].copy())
    with pytest.raises(ValueError, match="'u'.*2-d"):
        hash_loss("dpsh", u[0].copy(), y, idx, Y, U)
    g = np.empty_like(u)
    with pytest.raises(ValueError, match="'labels'.*shape"):
        saat._core.hash_loss("dpsh", u, y[:4].copy(), idx, Y, U, g)
    with pytest.raises(ValueError, match="'memory'.*shape"):
        saat._core.hash_loss("dpsh", u, y, idx, Y, U[:5].copy(), g)
    with pytest.raises(ValueError, match="'grad_out'.*shape"):
        saat._core.hash_loss("dpsh", u, y, idx, Y, U, g[:2].copy())
    with pytest.raises(ValueError, match="'u'.*C-contiguous"):
        saat._core.hash_loss("dpsh", np.asfortranarray(u), y, idx, Y, U, g)


def test_index_out_of_range_names_indices():
    u, y, idx, Y, U = good()
    for bad in (12, -1):
        j = idx.copy()
        j[2] = bad
        with pytest.raises(ValueError, match=f"'indices'.*0\\.\\.<12.*got {bad}"):
            hash_loss("hashnet", u, y, j, Y, U)


def test_bad_values_name_the_argument():
    u, y, idx, Y, U = good()
    Yb = Y.copy()
    Yb[0, 0] = 0.5
    with pytest.raises(ValueError, match="'train_labels'.*0/1"):
        hash_loss("dph", u, y, idx, Yb, U)
    yb = y.copy()
    yb[1, 1] = 2
    with pytest.raises(ValueError, match="'labels'.*0/1"):
        hash_loss("dph", u, yb, idx, Y, U)
    un = u.copy()
    un[0, 0] = np.nan
    with pytest.raises(ValueError, match="'u'.*finite"):
        hash_loss("dph", un, y, idx, Y, U)
    Un = U.copy()
    Un[3, 3] = np.inf
    with pytest.raises(ValueError, match="'memory'.*finite"):
        hash_loss("dph", u, y, idx, Y, Un)
    with pytest.raises(ValueError, match="'u'.*power of two"):
        hash_loss("csq", *good(12))
    uo = u.copy()
    uo[0, 0] = 1.5
    with pytest.raises(ValueError, match="'u'.*\\[-1, 1\\]"):
        hash_loss("csq", uo, y, idx, Y, U)
    with pytest.raises(ValueError, match="'seed'"):
        hash_loss("csq", u, y, idx, Y, U, seed=-1)
    with pytest.raises(TypeError, match="'seed'"):
        hash_loss("csq", u, y, idx, Y, U, seed=1.5)


def test_read_only_memory_with_write_memory():
    u, y, idx, Y, U = good()
    U.flags.writeable = False
    hash_loss("dph", u, y, idx, Y, U)           # fine: not written
    with pytest.raises(ValueError, match="'memory'.*read-only"):
        hash_loss("dph", u, y, idx, Y, U, write_memory=True)
    with pytest.raises(ValueError, match="'memory'.*read-only"):
        saat._core.hash_loss("dph", u, y, idx, Y, U, np.empty_like(u), write_memory=True)
