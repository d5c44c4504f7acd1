"""Rounding-error bounds that the numerical tests derive their tolerances from.

saat computes in float32 through OpenBLAS, whose kernel (and so the summation order, blocking and
use of FMA) depends on the CPU and on the shape of each call; the references here are float64.
A tolerance must therefore hold for *any* summation order, which the classical bound gives
(Higham, Accuracy and Stability of Numerical Algorithms, §3.1): a float32 dot product or sum of n
terms, computed in any order, with or without FMA,

    |computed − exact| ≤ γ_n · Σ|a_i·b_i|,   γ_n = n·u / (1 − n·u),   u = 2⁻²⁴.

The helpers propagate such a bound through a network as a first-order running error bound,
together with the float64 reference value: for z = W·x + b where the computed x̂ carries an error
bound E_x (|x̂ − x| ≤ E_x),

    E_z = |W|·E_x + γ_{n+1}·(|W|·(|x| + E_x) + |b|)        (n = fan-in; the bias is one more term)

(|x| + E_x bounds |x̂|, so the rounding term holds for the computed input too). ReLU and max-pool
are 1-Lipschitz, so E passes through (the max over the window for the pool). The float64
reference's own rounding is the same bound with u = 2⁻⁵³, i.e. 2⁻²⁹ of the float32 one: the
safety factor SAFETY = 1.01 covers it (and the float64 evaluation of the bound itself).
"""
from __future__ import annotations

import numpy as np

U32 = 2.0 ** -24          # unit roundoff of float32 (round to nearest)
U64 = 2.0 ** -53          # unit roundoff of float64
SAFETY = 1.01             # covers the float64 reference's own rounding (2⁻²⁹ of the float32 bound)


def gamma(n, u=U32):
    """γ_n = n·u/(1 − n·u): the relative error bound of an n-term float sum/dot product in any order."""
    nu = n * u
    assert nu < 0.5, n
    return nu / (1 - nu)


def check_within(got, ref, bound, what=""):
    """Assert |got − ref| ≤ bound elementwise (float64); returns the worst ratio |got − ref|/bound.

    The message names the worst element, its error and its bound."""
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    bound = np.broadcast_to(np.asarray(bound, np.float64), ref.shape)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    err = np.abs(got - ref)
    ratio = err / np.where(bound > 0, bound, np.inf)
    ratio = np.where((bound == 0) & (err > 0), np.inf, ratio)
    i = np.unravel_index(int(np.argmax(ratio)), ratio.shape) if ratio.size else ()
    worst = float(ratio[i]) if ratio.size else 0.0
    assert worst <= 1.0, (f"{what}: |got - ref| exceeds the derived rounding bound at {i}: "
                          f"got {got[i]!r}, ref {ref[i]!r}, error {err[i]:.3g} > bound {bound[i]:.3g}")
    return worst


# ------------------------------------------------------------------ cnn-small float64 reference
def conv2d(x, w, b, pad):
    """float64 cross-correlation (stride 1) as torch's conv2d, NCHW."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    out = np.zeros((n, o, oh, ow), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + oh, j:j + ow]  # (n, c, oh, ow)
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j], optimize=True)
    return out + b[None, :, None, None]


def maxpool2(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def grid_exponent(a):
    """The smallest q ≥ 0 with every a·2^q an integer (a: float64 values, all dyadic)."""
    a = np.asarray(a, np.float64).ravel()
    a = a[a != 0]
    if a.size == 0:
        return 0
    m, e = np.frexp(a)                                  # a = m·2^e, 0.5 ≤ |m| < 1
    mant = np.abs(m * 2.0 ** 53).astype(np.int64)       # exact 53-bit integer significands
    low = mant & -mant                                  # lowest set bit
    bits = 53 - np.log2(low).astype(np.int64)           # significant bits after the binary point of m
    return int(max(0, np.max(bits - e)))


def _rounding(mag, terms_grid, n_terms, u, exact_input):
    """Local rounding bound of a sum of products: 0 when it is exact, else γ_n·mag.

    Exact: every product and bias lies on the grid 2^-q and every partial sum, in any order, is at
    most Σ|terms| = mag in magnitude, so mag·2^q ≤ 1/u (= 2^24 for float32) makes each of them a
    representable float: the sum is then computed exactly by any kernel, blocked, FMA or not."""
    if exact_input and terms_grid is not None and mag.max() * 2.0 ** terms_grid <= 1 / u:
        return np.zeros_like(mag), True
    return gamma(n_terms, u) * mag, False


# ------------------------------------------------------------------ Winograd F(m×m, 3×3)
WINOGRAD_MIN_CHANNELS = 16   # HashKernels' Winograd.minimumChannels
WINOGRAD_MIN_TILES = 49      # HashKernels' Winograd.minimumTiles (2×2 tiles per image, F(2×2))
WINOGRAD_MIN_TILES4 = 49     # HashKernels' Winograd.minimumTiles4 (4×4 tiles per image, F(4×4))
# Roundings besides the channel sum (NumericBounds.winogradExtraRoundings), by (tile, kernel):
# F(2×2, 3×3) 2 (input transform) + 4 (filter transform) + 1 (product) + 4 (output); F(4×4, 3×3)
# 4 + 6 + 1 + 6; F(2×2, 5×5) 4 + 8 + 1 + 6.
WINOGRAD_EXTRA_ROUNDINGS = {(2, 3): 11, (4, 3): 17, (2, 5): 19}


def uses_winograd(w, pad, image_shape, stride=1):
    """The tile size m of the Winograd F(m×m, r×r) saat computes this conv's forward and input
    gradient by, 0 when it does not: stride 1, at least WINOGRAD_MIN_CHANNELS input and output
    channels, and 3×3 with padding 1 (F(4×4) from WINOGRAD_MIN_TILES4 4×4 tiles per image, else
    F(2×2) from WINOGRAD_MIN_TILES 2×2 tiles) or 5×5 with padding 2 (F(2×2) from
    WINOGRAD_MIN_TILES 2×2 tiles); image_shape: (..., H, W). At 32×32, cnn-small's 16×16 layer
    (8×8 2×2 tiles) is F(2×2); its first layer has 3 input channels."""
    o, c, kh, kw = w.shape
    h, wd = image_shape[-2:]
    if not (kh == kw and (kh, pad) in ((3, 1), (5, 2)) and stride == 1 and min(o, c) >= WINOGRAD_MIN_CHANNELS):
        return 0
    if kh == 3 and ((h + 3) // 4) * ((wd + 3) // 4) >= WINOGRAD_MIN_TILES4:
        return 4
    return 2 if ((h + 1) // 2) * ((wd + 1) // 2) >= WINOGRAD_MIN_TILES else 0


_BT6 = np.array([[4, 0, 5, 0, 1, 0], [0, 4, 4, 1, 1, 0], [0, 4, 4, 1, 1, 0], [0, 2, 1, 2, 1, 0],
                 [0, 2, 1, 2, 1, 0], [0, 4, 0, 5, 0, 1]], float)
_S6 = np.array([1 / 4, 1 / 6, 1 / 6, 1 / 24, 1 / 24, 1])
# |Bᵀ|, |G|, |Aᵀ| of F(2×2, 3×3), F(4×4, 3×3) and F(2×2, 5×5) (HashKernels' Winograd).
_WINOGRAD_ABS = {
    (2, 3): (np.array([[1, 0, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 0, 1]], float),
        np.array([[1, 0, 0], [.5, .5, .5], [.5, .5, .5], [0, 0, 1]]),
        np.array([[1, 1, 1, 0], [0, 1, 1, 1]], float)),
    (4, 3): (_BT6, _S6[:, None] * np.array([[1, 0, 0], [1, 1, 1], [1, 1, 1], [1, 2, 4], [1, 2, 4], [0, 0, 1]], float),
             np.array([[1, 1, 1, 1, 1, 0], [0, 1, 1, 2, 2, 0], [0, 1, 1, 4, 4, 0], [0, 1, 1, 8, 8, 1]], float)),
    (2, 5): (_BT6, _S6[:, None] * np.array([[1, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 2, 4, 8, 16],
                                            [1, 2, 4, 8, 16], [0, 0, 0, 0, 1]], float),
             np.array([[1, 1, 1, 1, 1, 0], [0, 1, 1, 2, 2, 1]], float)),
}


def winograd_magnitude(a, w, tile):
    """Rounding magnitude of saat's Winograd F(m×m, r×r) padding-(r − 1)/2 convolution (m = tile,
    r from w) of a (N, C, H, W) with w (O, C, r, r), both taken in absolute value:
    |Aᵀ|·[Σ_c (|G|·|w|·|Gᵀ|) ⊙ (|Bᵀ|·|d|·|B|)]·|A| per output, d the zero-padded α×α patch under the
    output's tile (α = m + r − 1). Every partial result of the algorithm is bounded by it, and its
    float32 error by γ_{C+e} times it (plus the bias), e = WINOGRAD_EXTRA_ROUNDINGS[(m, r)]."""
    r = w.shape[-1]
    bt, g, at = _WINOGRAD_ABS[(tile, r)]
    a, w = np.abs(np.asarray(a, np.float64)), np.abs(np.asarray(w, np.float64))
    n, c, h, wd = a.shape
    m, s, p = tile, tile + r - 1, (r - 1) // 2
    th, tw = (h + m - 1) // m, (wd + m - 1) // m
    up = np.einsum("au,ocuv,bv->ocab", g, w, g)
    ap = np.zeros((n, c, m * th + r - 1, m * tw + r - 1))
    ap[:, :, p:h + p, p:wd + p] = a
    patches = np.lib.stride_tricks.sliding_window_view(ap, (s, s), axis=(2, 3))[:, :, ::m, ::m]  # n c th tw s s
    v = np.einsum("ar,nctirq,bq->nctiab", bt, patches, bt)
    mm = np.einsum("ocab,nctiab->notiab", up, v, optimize=True)
    out = np.einsum("ia,notjab,kb->notijk", at, mm, at)          # n o th tw m m
    out = out.transpose(0, 1, 2, 4, 3, 5).reshape(n, up.shape[0], m * th, m * tw)
    return out[:, :, :h, :wd]


def _conv_bounded(x, ex, w, b, pad, u, check_exact=True):
    """Conv layer value and error bound: fan-in C·k·k products plus the bias; for a Winograd
    F(m×m, r×r) layer, γ_{C+e+1} times the Winograd magnitude plus |b|. F(2×2, 3×3)'s
    intermediates lie on the grid of x·w/4; F(4×4, 3×3)'s and F(2×2, 5×5)'s do not (their filter
    transforms have the factors 1/6 and 1/24), so such a layer is never taken as exact."""
    y = conv2d(x, w, b, pad)
    tile = uses_winograd(w, pad, x.shape)
    if tile:
        mag = winograd_magnitude(np.abs(x) + ex, w, tile) + np.abs(b)[None, :, None, None]
        n_terms, extra_grid = w.shape[1] + WINOGRAD_EXTRA_ROUNDINGS[(tile, w.shape[-1])] + 1, 2
    else:
        mag = conv2d(np.abs(x) + ex, np.abs(w), np.abs(b), pad)
        n_terms, extra_grid = w[0].size + 1, 0
    exact_in = check_exact and not np.any(ex) and (tile == 0 or (tile, w.shape[-1]) == (2, 3))
    q = max(grid_exponent(x) + grid_exponent(w) + extra_grid, grid_exponent(b)) if exact_in else None
    r, exact = _rounding(mag, q, n_terms, u, exact_in)
    return y, conv2d(ex, np.abs(w), np.zeros_like(b), pad) + r, exact


def _linear_bounded(x, ex, w, b, u, check_exact=True):
    y = x @ w.T + b
    mag = (np.abs(x) + ex) @ np.abs(w).T + np.abs(b)
    exact_in = check_exact and not np.any(ex)
    q = max(grid_exponent(x) + grid_exponent(w), grid_exponent(b)) if exact_in else None
    r, exact = _rounding(mag, q, w.shape[1] + 1, u, exact_in)
    return y, ex @ np.abs(w).T + r, exact


def tanh_bounded(z, ez, alpha, u=U32, ulps=2):
    """y = tanh(α·z) computed as tanh(fl(α·ẑ)) with ẑ within ez of z; α is the float32 value used.

    The argument error is d = α·ez + u·α·(|z| + ez) (the product's rounding); tanh' = 1 − tanh² is
    largest where |t| is smallest, so over [t − d, t + d] the Lipschitz factor is
    1 − tanh²(max(|t| − d, 0)) (no first-order approximation); the library tanh adds `ulps` ulps of
    the result, ≤ 2·ulps·u·|y| (one ulp of y is at most 2u|y|). glibc's tanhf is within 2 ulp."""
    t = alpha * z
    d = alpha * ez + u * alpha * (np.abs(z) + ez)
    lip = 1 - np.tanh(np.maximum(np.abs(t) - d, 0)) ** 2
    y = np.tanh(t)
    return y, lip * d + 2 * ulps * u * (np.abs(y) + d)


def cnn_small_reference(sd, x, alpha=1.0, mean=None, std=None, *, u=U32, input_error=None,
                        check_exact=True):
    """cnn-small forward in float64 and a bound on |float32 forward − reference| for any BLAS kernel.

    sd: the state dict (its float32 values are used exactly); x: the float32 images the model got;
    alpha: the value the model used, pass float(np.float32(alpha)); mean/std: the model's float32
    normalisation (None: none, as when mean = 0 and std = 1, which saat skips). The normalisation
    (x − m)·fl(1/s) rounds three times: error ≤ γ_3·|x − m|/s, none when m and x lie on a common
    grid and s is a power of two. input_error: an extra bound on the input pixels (e.g. when two
    inputs differ by an ulp). Each layer is either exact (see `_rounding`) or rounds by γ_n·mag.

    check_exact=False bounds every layer's rounding by γ_n·mag (for points off the grids).

    Returns (y, bound, exact) with bound already multiplied by SAFETY and exact the list of
    per-stage exactness flags (normalisation if any, conv0, conv1, fc, hash)."""
    sd = {k: np.asarray(v, np.float64) for k, v in sd.items()}
    h = np.asarray(x, np.float64)
    e = np.zeros_like(h) if input_error is None else np.broadcast_to(np.asarray(input_error, np.float64), h.shape)
    exact = []
    if mean is not None:
        m = np.asarray(mean, np.float64)[None, :, None, None]
        s = np.asarray(std, np.float64)[None, :, None, None]
        pow2 = np.all(np.frexp(s)[0] == 0.5)
        ok = (check_exact and not np.any(e) and pow2 and
              (np.abs(h) + np.abs(m)).max() * 2.0 ** max(grid_exponent(h), grid_exponent(m)) <= 1 / u)
        h = (h - m) / s
        e = e / s if ok else e / s + gamma(3, u) * (np.abs(h) + e / s)
        exact.append(bool(ok))
    for i, pad in (("features.0", 1), ("features.3", 1)):
        z, ez, ex = _conv_bounded(h, e, sd[i + ".weight"], sd[i + ".bias"], pad, u, check_exact)
        exact.append(ex)
        h, e = maxpool2(np.maximum(z, 0)), maxpool2(ez)
    h, e = h.reshape(h.shape[0], -1), e.reshape(e.shape[0], -1)
    for i in ("classifier.0", "hash_layer"):
        z, ez, ex = _linear_bounded(h, e, sd[i + ".weight"], sd[i + ".bias"], u, check_exact)
        exact.append(ex)
        h, e = np.maximum(z, 0), ez
    y, ey = tanh_bounded(z, ez, alpha, u)
    return y, SAFETY * ey, exact


CNN_SMALL_LAYERS = ("features.0", "features.3", "classifier.0", "hash_layer")


def dyadic_round(sd, grids=(3, 4, 5, 4), input_grid=4):
    """cnn-small weights rounded to dyadic grids: layer l's weights to multiples of 2^-grids[l], its
    bias to the grid of its products, 2^-(input_grid + grids[0] + … + grids[l]), for inputs on the
    grid 2^-input_grid. Whether the sums then stay exact is checked by cnn_small_reference."""
    out, q = {}, input_grid
    for name, p in zip(CNN_SMALL_LAYERS, grids):
        q += p
        out[name + ".weight"] = (np.round(np.asarray(sd[name + ".weight"], np.float64) * 2.0 ** p) / 2.0 ** p).astype(np.float32)
        out[name + ".bias"] = (np.round(np.asarray(sd[name + ".bias"], np.float64) * 2.0 ** q) / 2.0 ** q).astype(np.float32)
    return out


def dyadic_cnn_small_state(bits, seed, grids=(3, 4, 5, 4), input_grid=4, hash_std=0.04):
    """cnn-small weights for which the float32 forward is exact up to the final tanh.

    Kaiming-normal weights (hash layer N(0, hash_std)) and U(−0.2, 0.2) biases on the dyadic grids
    of `dyadic_round`, for pixels on the grid 2^-input_grid (`dyadic_images`). With these sizes
    every Σ|w·x| + |b| stays below 2^24 grid steps (cnn_small_reference checks it and reports it
    in `exact`), so no product or partial sum rounds, whatever the BLAS kernel."""
    rng = np.random.default_rng(seed)
    shapes = [(32, 3, 3, 3), (64, 32, 3, 3), (512, 4096), (bits, 512)]
    sd = {}
    for name, shape in zip(CNN_SMALL_LAYERS, shapes):
        std = hash_std if name == "hash_layer" else np.sqrt(2 / np.prod(shape[1:]))
        sd[name + ".weight"] = rng.normal(0, std, shape)
        sd[name + ".bias"] = rng.uniform(-0.2, 0.2, shape[0])
    return dyadic_round(sd, grids, input_grid)


def dyadic_images(n, seed, input_grid=4):
    """n images (3, 32, 32) with pixels k/2^input_grid in [0, 1] (exact in float32)."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 2 ** input_grid + 1, (n, 3, 32, 32)) / 2.0 ** input_grid).astype(np.float32)


# ------------------------------------------------------------------ input gradient (VJP) reference
def conv2d_input_grad(d, w, pad):
    """∂x of conv2d(x, w, ·, pad) (stride 1) for the output gradient d: the transposed convolution."""
    k = w.shape[2]
    return conv2d(d, w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), np.zeros(w.shape[1]), k - 1 - pad)


def _pool_argmax(a):
    """2×2 max-pool of a (N, C, H, W) and a one-hot (N, C, H, W) routing mask of each window's first
    maximum in row-major window order (strict >, as saat's and PyTorch's CPU kernels)."""
    n, c, h, w = a.shape
    win = a.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    first = np.argmax(win, axis=-1)
    onehot = (np.arange(4) == first[..., None]).astype(np.float64)
    route = onehot.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)
    return win.max(-1), route


def _unpool(d, route):
    return np.repeat(np.repeat(d, 2, axis=2), 2, axis=3) * route


def forward_trace(sd, x, mean=None, std=None):
    """float64 cnn-small forward keeping what the backward and the kink checks need: pre-activations
    z0, z1 (convs), z2 (fc), z3 (hash, before tanh), the pool routings r0, r1 and pooled output p1."""
    sd = {k: np.asarray(v, np.float64) for k, v in sd.items()}
    h = np.asarray(x, np.float64)
    if mean is not None:
        h = (h - np.asarray(mean, np.float64)[None, :, None, None]) / np.asarray(std, np.float64)[None, :, None, None]
    z0 = conv2d(h, sd["features.0.weight"], sd["features.0.bias"], 1)
    p0, r0 = _pool_argmax(np.maximum(z0, 0))
    z1 = conv2d(p0, sd["features.3.weight"], sd["features.3.bias"], 1)
    p1, r1 = _pool_argmax(np.maximum(z1, 0))
    z2 = p1.reshape(p1.shape[0], -1) @ sd["classifier.0.weight"].T + sd["classifier.0.bias"]
    z3 = np.maximum(z2, 0) @ sd["hash_layer.weight"].T + sd["hash_layer.bias"]
    return {"z0": z0, "r0": r0, "z1": z1, "r1": r1, "p1": p1, "z2": z2, "z3": z3}


def same_pattern(a, b):
    """True when two traces take every ReLU and max-pool branch alike (no kink between them)."""
    return all(np.array_equal(a[k] > 0, b[k] > 0) for k in ("z0", "z1", "z2")) and \
        all(np.array_equal(a[k], b[k]) for k in ("r0", "r1"))


def cnn_small_input_gradient(sd, x, g, alpha=1.0, mean=None, std=None, *, u=U32):
    """(∂F/∂x)ᵀ·g in float64 and a bound on |float32 saat − reference| for any BLAS kernel.

    Only for problems whose float32 forward is exact up to tanh (`dyadic_cnn_small_state` with
    `dyadic_images`, dyadic mean and power-of-two std; asserted here): then saat's ReLU masks and
    pool argmaxes are exactly the reference's (same first-maximum rule, ReLU gradient only where
    the output is > 0) and its backward is a fixed chain of float32 sums. Running bound, backwards:
    d = g·α·(1 − ŷ²) with ŷ off by the forward bound E_y and four roundings (ŷ², 1 − ·, α·, g·);
    each transposed layer is a sum of n terms (hash: K, fc: 512, conv0: 32·9), so
    E ← |W|ᵀ·E + γ_n·|W|ᵀ·(|δ| + E), except a conv computed by Winograd F(m×m): γ_{O+e} times its
    magnitude (`winograd_magnitude`) replaces the second term; masks and routing pass E through; the final ·fl(1/std) is
    exact for power-of-two std. Returns (grad, bound), bound × SAFETY."""
    y, ey, exact = cnn_small_reference(sd, x, alpha, mean, std, u=u)
    assert all(exact), f"the gradient bound needs an exact forward up to tanh; exactness per stage: {exact}"
    t = forward_trace(sd, x, mean, std)
    sd = {k: np.asarray(v, np.float64) for k, v in sd.items()}
    z0, r0, z1, r1, p1, z2 = t["z0"], t["r0"], t["z1"], t["r1"], t["p1"], t["z2"]
    # d = g·α(1 − y²) as saat rounds it, ŷ within ey of y
    g = np.asarray(g, np.float64)
    ay, e1 = np.abs(y) + ey, (2 * np.abs(y) + ey) * ey
    e_t1 = e1 + u * ay ** 2                                   # ŷ·ŷ
    one = 1 - y ** 2
    e_t2 = e_t1 + u * (one + e_t1)                            # 1 − ŷ²
    e_t3 = alpha * e_t2 + u * alpha * (one + e_t2)            # α·(…)
    d = g * alpha * one
    e = np.abs(g) * e_t3 + u * (np.abs(d) + np.abs(g) * e_t3)  # g·(…)

    def back_linear(d, e, w):
        aw = np.abs(w)
        return d @ w, e @ aw + gamma(w.shape[0], u) * ((np.abs(d) + e) @ aw)

    def back_conv(d, e, w):
        aw = np.abs(w)
        tile = uses_winograd(w, 1, d.shape)
        if tile:   # ∂x = conv(δ, rot180(w)ᵀ) by Winograd, O → C channels
            wt = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
            r = gamma(w.shape[0] + WINOGRAD_EXTRA_ROUNDINGS[(tile, w.shape[-1])], u) * winograd_magnitude(np.abs(d) + e, wt, tile)
        else:
            n_terms = w.shape[0] * w.shape[2] * w.shape[3]
            r = gamma(n_terms, u) * conv2d_input_grad(np.abs(d) + e, aw, 1)
        return conv2d_input_grad(d, w, 1), conv2d_input_grad(e, aw, 1) + r

    d, e = back_linear(d, e, sd["hash_layer.weight"])
    m = z2 > 0
    d, e = back_linear(d * m, e * m, sd["classifier.0.weight"])
    d, e = d.reshape(p1.shape), e.reshape(p1.shape)
    m = z1 > 0
    d, e = back_conv(_unpool(d, r1) * m, _unpool(e, r1) * m, sd["features.3.weight"])
    m = z0 > 0
    d, e = back_conv(_unpool(d, r0) * m, _unpool(e, r0) * m, sd["features.0.weight"])
    if mean is not None:
        s = np.asarray(std, np.float64)[None, :, None, None]
        d, e = d / s, e / s                                   # ·fl(1/s): exact for power-of-two s
    return d, SAFETY * e
