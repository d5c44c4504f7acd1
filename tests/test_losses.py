"""saat.losses against independent numpy implementations written from the formulas of
the official SAAT code (constants) and CgAT code (DSDH, DCH)."""
import numpy as np
import pytest

import saat
from saat import losses
from saat.losses import LOSSES, hash_loss
from _bounds import SAFETY, U32, U64, check_within, gamma


# ---------------------------------------------------------------- numpy references (float64)
# Written so that they also take complex u (the complex-step derivative below): every |x|, max,
# min and sign selects by the real part, which for real input is the usual function.

def softplus(x):
    return np.where(x.real > 0, x + np.log1p(np.exp(-x)), np.log1p(np.exp(x)))


def rabs(x):
    return x * np.sign(x.real)


def sim(y, Y):
    return (y @ Y.T > 0).astype(np.float64)


def ref_dpsh(u, y, idx, Y, U):
    th = 0.5 * u @ U.T
    s = sim(y, Y)
    b, n = th.shape
    return ((softplus(th) - s * th).sum() + 50 * ((np.sign(u.real) - u) ** 2).sum()) / (b * n)


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


def ref_dsdh_state(Y, U, mu=1.0, nu=1.0, eta=55.0, iters=10, margins=None):
    """B = sign(U), then the DCC iterations; B is N×K here (CgAT stores K×N). With a list
    `margins`, appends (|P − others|, bound) of every sign decision, the bound being how far saat's
    float32 value of P − others can be from this one (see dsdh_decision_bound)."""
    B = np.sign(U)
    k = U.shape[1]
    for _ in range(iters):
        W = np.linalg.solve(B.T @ B + nu / mu * np.eye(k), B.T @ Y)       # K×C
        P = Y @ W.T + eta / mu * U                                        # N×K
        M = W @ W.T
        for i in range(k):
            others = B @ M[:, i] - B[:, i] * M[i, i]
            if margins is not None:
                margins.append((np.abs(P[:, i] - others), dsdh_decision_bound(Y, U, W, B, i, eta / mu)))
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
        prod = np.sqrt((a * a).sum(1))[:, None] * np.sqrt((c * c).sum(1))[None, :]
        cos = (a @ c.T) / np.where(prod.real > 1e-4, prod, 1e-4)
        return (1 - np.where(cos.real < 0.99, cos, 0.99)) * k / 2

    s = sim(y, y)
    if s.sum() != 0 and (1 - s).sum() != 0:
        w = s * s.size / s.sum() + (1 - s) * s.size / (1 - s).sum()
    else:
        w = 1.0
    d = dist(u, u)
    cauchy = w * (s * np.log(d / gamma) + np.log(1 + gamma / d))
    q = np.log(1 + dist(rabs(u), np.ones((1, k))) / gamma)
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
    lp, lq = np.log(p), np.log(1 - p)
    bce = -(t * np.where(lp.real > -100, lp, -100) + (1 - t) * np.where(lq.real > -100, lq, -100))
    return bce.mean() + lam * ((rabs(u) - 1) ** 2).mean()


REFS = {"dpsh": ref_dpsh, "dph": ref_dph, "hashnet": ref_hashnet, "dsdh": ref_dsdh, "dch": ref_dch, "csq": ref_csq}


def complex_step_gradient(f, u, y, idx, Y, U, h=1e-30):
    """∂f/∂u of a reference by complex steps: Im f(u + i·h·e_ij)/h has no subtractive cancellation
    (so no rounding amplification), and its truncation h²/6·|f'''| is ~1e-60 here: it is the
    float64 derivative to a few ulps of its terms."""
    g = np.zeros(u.shape)
    for i in range(u.shape[0]):
        for j in range(u.shape[1]):
            z = u.astype(np.complex128)
            z[i, j] += 1j * h
            g[i, j] = f(z, y, idx, Y, U).imag / h
    return g


# ---------------------------------------------------------------- derived rounding bounds
# saat computes every B×N (or B×B) product matrix in float32 through OpenBLAS sgemm and the rest
# in float64 (tests/_bounds.py has the γ_n bound). The θ matrices: θ̂ = fl(c·u·Uᵀ) with k products,
# the scale c (itself rounded to float32 for 1/k and 10/k) and the sgemm's alpha multiply:
# |θ̂ − θ| ≤ γ_{k+2}·|c|·|u|·|U|ᵀ =: E_θ. The losses are sums of w·ℓ(θ_ij): |ΔL| ≤ Σ w·max|ℓ'|·E_θ
# over the interval θ ± E_θ; for the gradients, G = fl(w·ℓ'(θ̂)) is off by w·max|ℓ''|·E_θ + u|G|
# and G·U (n terms, alpha, beta) rounds by γ_{n+3}. The float64 parts (sums over ≤ a few hundred
# terms, log/exp within a few ulps) are 2⁻²⁹ of that and inside SAFETY; CSQ, which has no float32
# sum, gets their explicit float64 bound.
SIGMA1, SIGMA2 = 1.0, 0.25          # max |σ(t) − s| for s ∈ {0, 1}; max |σ'|


def theta_bound(u, U, scale):
    k = u.shape[1]
    return gamma(k + 2) * abs(scale) * np.abs(u) @ np.abs(U).T


def back_project_bound(G, EG, U, scale, extra=0.0):
    """|fl(scale·Ĝ·U + extra) − scale·G·U − extra| for Ĝ within EG of G."""
    n = U.shape[0]
    aU, s = np.abs(U), abs(scale)
    return gamma(n + 3) * (s * (np.abs(G) + EG) @ aU + np.abs(extra)) + s * EG @ aU


def dsdh_decision_bound(Y, U, W, B, i, eta):
    """How far saat's float32 P[:, i] − others can be from the float64 value, for the same B:
    W is rounded to float32 (u|W|); P = fl(Y·Wᵀ + η·U) sums C + 1 terms; M = fl(W·Wᵀ) sums C
    products of rounded W (γ_C + 2u); others = fl(B·M[:, i] − B_i·M_ii) sums K + 1 terms; the
    difference rounds once more: γ_{C+K+4} on all magnitudes plus the propagated W and M errors."""
    c, k = Y.shape[1], U.shape[1]
    aW = np.abs(W)
    yw = np.abs(Y) @ aW.T                                     # N×K
    mm = aW @ aW.T                                            # K×K
    bm = np.abs(B) @ mm[:, i] + np.abs(B[:, i]) * mm[i, i]
    mag = yw[:, i] + eta * np.abs(U[:, i]) + bm
    return SAFETY * (gamma(c + k + 4) * mag + U32 * yw[:, i] + (gamma(c) + 2 * U32) * 2 * bm)


def value_and_grad_bounds(name, u, y, idx, Y, U):
    """Bounds on |saat loss − float64 loss| and, entrywise, on |saat grad − exact grad|."""
    u, y, Y, U = (None if a is None else a.astype(np.float64) for a in (u, y, Y, U))
    b, k = u.shape
    if name in ("dpsh", "dph", "hashnet", "dsdh"):
        n = U.shape[0]
        s = sim(y, Y)
        scale = {"dpsh": 0.5, "dsdh": 0.5, "dph": 1 / k, "hashnet": 10 / k}[name]
        th = scale * u @ U.T
        et = theta_bound(u, U, scale)
        if name == "dph":
            t = 2 * s - 1
            w = 1 / (b * n)
            ev = w * ((2 * np.abs(th - t) + et) * et).sum()      # |(a + e)² − a²| ≤ (2|a| + e)e
            G, EG = w * 2 * (th - t), w * 2 * et
        else:
            if name == "hashnet":
                s1, s0 = s.sum(), (1 - s).sum()
                w = np.where(s > 0, 1 / s1 if s1 else 0, 1 / s0 if s0 else 0)
            else:
                w = np.full(s.shape, 1 / (b * n))
            ev = (w * SIGMA1 * et).sum()
            G, EG = w * (1 / (1 + np.exp(-th)) - s), w * SIGMA2 * et
        EG = EG + U32 * (np.abs(G) + EG)                           # Float(·) of the double G
        extra = 0.0
        if name == "dpsh":
            extra = 2 * 50 / (b * n) * (u - np.sign(u))           # Float(2η/(B·N))·(u − sign u): 3 roundings
        eg = back_project_bound(G, EG, U, scale, extra) + gamma(3) * np.abs(extra)
        if name == "dsdh":
            margins = []
            B, W = ref_dsdh_state(Y, U, margins=margins)
            gap = min(float((m / e).min()) for m, e in margins)
            assert gap > 1, f"a DCC sign decision is within saat's rounding of 0 (margin/bound {gap:.3g}): pick other data"
            c = Y.shape[1]
            aW = np.abs(W)
            pred = B[idx] @ W
            ep = (gamma(k) + U32) * np.abs(B[idx]) @ aW               # B·fl32(W) by sgemm
            ev += ((2 * np.abs(y - pred) + ep) * ep).sum() / (b * c)
            ev += ((2 * aW + U32 * aW) * U32 * aW).sum() / (k * c)
        return SAFETY * ev, SAFETY * eg
    if name == "dch":
        gam, halfk, total = 20.0, k / 2, b * b
        dot = u @ u.T
        edot = gamma(k + 2) * np.abs(u) @ np.abs(u).T
        nrm = np.sqrt((u * u).sum(1))
        den = np.maximum(nrm[:, None] * nrm[None, :], 1e-4)
        cos = dot / den
        ecos = edot / den
        s = sim(y, y)
        if s.sum() != 0 and (1 - s).sum() != 0:
            w = s * s.size / s.sum() + (1 - s) * s.size / (1 - s).sum()
        else:
            w = np.ones_like(s)
        d = (1 - np.minimum(cos, 0.99)) * halfk
        dlo = d - halfk * ecos                                    # the smallest d within the error
        assert dlo.min() > 0
        # cos clamped at 0.99 (e.g. cos(u_i, u_i) = 1) on both sides: no dependence on the error;
        # where the error interval straddles 0.99, the gradient may be either g or 0
        clamped = cos - ecos > 0.99
        straddle = ~clamped & (cos + ecos >= 0.99)
        # |∂ℓ/∂d| = w·|s/d − γ/(d(d + γ))| ≤ w·(s/d + γ/(d(d + γ))), decreasing in d
        l1 = w * (s / dlo + gam / (dlo * (dlo + gam)))
        ev = (np.where(clamped, 0, l1) * halfk * ecos).sum() / total
        # gradient: g = ∂L/∂cos = −(k/2)·w·(s/d − γ/(d(d+γ)))/total (0 where clamped);
        # |∂g/∂d| ≤ (k/2)·w·(s/d² + γ(2d+γ)/(d(d+γ))²)/total, taken at the smallest d
        g = np.where(cos > 0.99, 0, -halfk * w * (s / d - gam / (d * (d + gam))) / total)
        eg_ = halfk * w * (s / dlo ** 2 + gam * (2 * dlo + gam) / (dlo * (dlo + gam)) ** 2) / total * halfk * ecos
        g_unclamped = halfk * w * (s / dlo + gam / (dlo * (dlo + gam))) / total
        eg_ = np.where(clamped, 0, np.where(straddle, g_unclamped + eg_, eg_))
        a = g / den
        ea = eg_ / den + U32 * (np.abs(a) + eg_ / den)             # Float(g/den)
        A, eA = a + a.T, ea + ea.T
        eA = eA + U32 * (np.abs(A) + eA)                          # the float32 symmetrisation
        grad1 = gamma(b + 1) * (np.abs(A) + eA) @ np.abs(u) + eA @ np.abs(u)
        coef = ((g + g.T) * cos).sum(1) / nrm ** 2
        ecoef = ((eg_ + eg_.T) * (np.abs(cos) + ecos) + np.abs(g + g.T) * ecos).sum(1) / nrm ** 2
        # grad −= Float(f·u): the propagated coefficient error, the cast and the subtraction
        grad2 = ecoef[:, None] * np.abs(u) + 2 * U32 * (np.abs(coef)[:, None] * np.abs(u))
        # quantisation term: float64 from float32 u, cast and added: 2 roundings of its size
        cq = np.abs(u).sum(1) / (nrm * np.sqrt(k))
        dq = (1 - np.minimum(cq, 0.99)) * halfk
        gq = 0.1 / b / (gam + dq) * halfk
        qterm = gq[:, None] * (1 / (nrm[:, None] * np.sqrt(k)) + cq[:, None] / nrm[:, None] ** 2 * np.abs(u))
        eg = grad1 + grad2 + 2 * U32 * (qterm + np.abs(A) @ np.abs(u) + np.abs(coef)[:, None] * np.abs(u))
        return SAFETY * ev, SAFETY * eg
    assert name == "csq"
    # float64 only: each of the B·K terms (log or square, within 2 ulps) and their sum (B·K − 1
    # additions) on both sides: γ^(64)_{B·K+4}·Σ|terms|, twice; the gradient is cast to float32
    p = (u + 1) / 2
    terms = np.abs(np.log(np.minimum(p, 1 - p))) + 0.05 * (np.abs(u) - 1) ** 2
    ev = 2 * gamma(b * k + 4, U64) * terms.sum() / (b * k)
    q = (1 + np.abs(u)) / 2                                     # ≤ |1 + c·u|/2's largest value
    gmag = (1 / (2 * (1 - q + 1e-300)) + 0.1 * np.abs(np.abs(u) - 1)) / (b * k)
    return SAFETY * ev, SAFETY * U32 * 1.01 * gmag


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
        bound, _ = value_and_grad_bounds(name, u, y, idx, Y, U)    # derived: see the notes above
        check_within(loss, ref, bound, name)
        np.testing.assert_array_equal(U, U0)   # memory untouched without write_memory


@pytest.mark.parametrize("name,k", CASES)
def test_gradient_matches_numpy_complex_step(name, k):
    """Every entry of the gradient against the reference's derivative, taken by complex steps
    (no cancellation, so the float64 derivative is exact to a few ulps: no FD step to tune),
    within the derived bound of saat's float32 gradient."""
    u, y, idx, Y, U = make_data(k, seed=7 * k + len(name), odd_labels=(name == "csq"))
    _, grad = hash_loss(name, u, y, idx, Y, U)
    u64, y64, Y64, U64_ = (a.astype(np.float64) for a in (u, y, Y, U))
    ref = complex_step_gradient(REFS[name], u64, y64, idx, Y64, U64_)
    _, bound = value_and_grad_bounds(name, u, y, idx, Y, U)
    # plus the complex-step derivative's own float64 rounding: a few ulps of the largest term
    check_within(grad, ref, bound + 64 * U64 * np.abs(ref).max(), name)
    assert np.abs(ref).max() > 50 * bound.max(), (name, np.abs(ref).max(), bound.max())   # not vacuous


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
    check_within(loss, ref, value_and_grad_bounds("dpsh", u, y, idx, Y, U_written)[0], "dpsh")


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
    check_within(l8, ref_csq(u[:8].astype(np.float64), Y[:8, :8].astype(np.float64), None, None, None),
                 value_and_grad_bounds("csq", u[:8], Y[:8, :8], None, None, None)[0], "csq")


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
