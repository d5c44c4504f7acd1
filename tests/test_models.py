"""HashingModel through the Swift core: forward against an independent numpy implementation,
input gradients against finite differences, state dicts, modes, save/load and input checks."""
import numpy as np
import pytest

import saat
from saat._convert import as_images
from saat.models import HashingModel


# ----------------------------------------------------------------- numpy reference (independent)
# The float64 cnn-small reference and the rounding bounds the tolerances come from live in
# tests/_bounds.py (shared with test_interop.py). Why the comparisons use dyadic weights: the
# γ_n running bound of a float32 forward through Kaiming-initialised weights is 0.2–0.65 on
# outputs in (−1, 1) (the 4096-term fc layer may round by 2.4e-4·Σ|w·h| ≈ 1e-2 per unit, which
# the hash layer's |W| amplifies ×20), far too loose to catch a wrong bias or pooling. With
# weights and pixels on dyadic grids every product and partial sum is a float32 number, so saat's
# float32 network is exact up to tanh in any summation order, and the bound is a few ulps.
from _bounds import (SAFETY, U64, check_within, cnn_small_input_gradient, cnn_small_reference, dyadic_cnn_small_state,
                     dyadic_images, forward_trace, gamma, same_pattern)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.random((5, 3, 32, 32), dtype=np.float32)


def test_state_dict_has_pytorch_names_and_shapes():
    m = HashingModel("cnn-small", bits=16, seed=3)
    sd = m.state_dict()
    assert list(sd) == ["features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias",
                        "classifier.0.weight", "classifier.0.bias", "hash_layer.weight", "hash_layer.bias"]
    assert sd["features.0.weight"].shape == (32, 3, 3, 3)
    assert sd["features.3.weight"].shape == (64, 32, 3, 3)
    assert sd["classifier.0.weight"].shape == (512, 4096)
    assert sd["hash_layer.weight"].shape == (16, 512)
    # Kaiming-normal N(0, 2/fan_in) with zero biases for cnn-small; hash layer N(0, 0.01), zero bias
    assert abs(sd["features.0.weight"].std() - np.sqrt(2 / 27)) < 0.1 * np.sqrt(2 / 27)
    assert abs(sd["classifier.0.weight"].std() - np.sqrt(2 / 4096)) < 0.02 * np.sqrt(2 / 4096)
    assert np.all(sd["features.3.bias"] == 0)
    assert 0.008 < sd["hash_layer.weight"].std() < 0.012
    assert np.all(sd["hash_layer.bias"] == 0)


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_forward_matches_numpy_reference(alpha):
    m = HashingModel("cnn-small", bits=32, seed=1)
    # Kaiming weights, nonzero biases, a hash layer wide enough that the outputs span tanh's range,
    # all on dyadic grids with pixels k/16 (see the note above): the reference checks that no
    # product or partial sum rounds, so the bound is only fl(α·z) and tanhf (≤ 2 ulp), ~2e-7.
    sd = dyadic_cnn_small_state(32, seed=1)
    m.load_state_dict(sd)
    x = dyadic_images(5, seed=0)
    got = m.forward(x, alpha=alpha)
    ref, bound, exact = cnn_small_reference(sd, x, float(np.float32(alpha)))
    assert all(exact), exact
    assert got.shape == (5, 32) and got.dtype == np.float32
    check_within(got, ref, bound, "forward")
    assert bound.max() < 3e-7      # a few ulps: any wrong bias, pooling or layout fails
    assert np.abs(ref).max() > 0.2


def test_encode_is_sign_with_zero_to_plus_one(images):
    m = HashingModel("cnn-small", bits=24, seed=2)
    f = m.forward(images)
    c = m.encode(images)
    assert c.dtype == np.int8 and c.shape == (5, 24)
    np.testing.assert_array_equal(c, np.where(f >= 0, 1, -1))


def test_seeds_determine_weights():
    a = HashingModel("cnn-small", bits=8, seed=7).state_dict()
    b = HashingModel("cnn-small", bits=8, seed=7).state_dict()
    c = HashingModel("cnn-small", bits=8, seed=8).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def fd_check(m, sd, x, g, alpha, pixels, h, mean=None, std=None):
    """saat's input gradient against float64 finite differences of f(x) = Σ g·F(x), at `pixels`.

    On the dyadic grid some pre-activations are exactly 0 and some pool windows tie, i.e. x sits on
    a kink; saat then takes the branch of x (ReLU gradient only where the output is > 0, the first
    maximum of a window), which is the one-sided derivative towards the side where the float64
    reference keeps x's ReLU signs and pool winners. So: central differences when x − h, x and
    x + h share one branch pattern, else the one-sided difference towards the side that shares
    x's pattern; a pixel with neither is skipped (a property of the data, not of the machine).
    The tolerance of each pixel is derived, never tuned:
    - saat's float32 VJP: its bound from cnn_small_input_gradient (exact forward, so saat takes
      exactly the reference's ReLU/pool branches; the backward's sums round by γ_n);
    - truncation: on a kink-free segment the pre-tanh outputs are affine, z_k(t) = z_k + c_k·t, so
      the j-th derivative of f is Σ g_k·(α·c_k)^j·tanh^(j) with |tanh''| ≤ 4/(3√3), |tanh'''| ≤ 2:
      a central difference is off by ≤ h²/6·max|f'''| ≤ h²/3·Σ|g_k|·|α·c_k|³, a one-sided one
      by ≤ h/2·max|f''| (c_k from the two evaluations);
    - the float64 rounding of f: the γ_n bound with u = 2⁻⁵³ for every layer, taken at x (the
      magnitudes at x ± h differ by O(h), inside SAFETY), for both evaluations, over the step.
    Returns (pixels checked, worst error/tolerance)."""
    a = float(np.float32(alpha))
    grad = m.input_gradient(x, g, alpha=alpha)
    _, vjp_bound = cnn_small_input_gradient(sd, x, g, a, mean, std)
    x64, g64 = x.astype(np.float64), np.asarray(g, np.float64)
    t0 = forward_trace(sd, x64, mean, std)
    y64, e64, _ = cnn_small_reference(sd, x64, a, mean, std, u=U64, check_exact=False)
    round_f = SAFETY * ((np.abs(g64) * e64).sum() + gamma(g64.size, U64) * np.abs(g64 * y64).sum())
    f = lambda t: (g64 * np.tanh(a * t["z3"])).sum()  # noqa: E731
    checked, worst = 0, 0.0
    for idx in pixels:
        xp, xm = x64.copy(), x64.copy()
        xp[idx] += h
        xm[idx] -= h
        tp, tm = forward_trace(sd, xp, mean, std), forward_trace(sd, xm, mean, std)
        up, down = same_pattern(tp, t0), same_pattern(tm, t0)
        if up and down:
            step = xp[idx] - xm[idx]
            c = (tp["z3"] - tm["z3"]) / step
            trunc = (step / 2) ** 2 / 3 * (np.abs(g64) * np.abs(a * c) ** 3).sum()
            fd = (f(tp) - f(tm)) / step
        elif up or down:
            hi, lo, step = (tp, t0, xp[idx] - x64[idx]) if up else (t0, tm, x64[idx] - xm[idx])
            c = (hi["z3"] - lo["z3"]) / step
            trunc = step / 2 * 4 / (3 * np.sqrt(3)) * (np.abs(g64) * (a * c) ** 2).sum()
            fd = (f(hi) - f(lo)) / step
        else:
            continue
        tol = vjp_bound[idx] + SAFETY * trunc + 2 * round_f / step
        err = abs(fd - float(grad[idx]))
        assert err <= tol, (idx, fd, grad[idx], err, tol)
        checked, worst = checked + 1, max(worst, err / tol)
    return checked, worst


def test_input_gradient_matches_finite_differences():
    m = HashingModel("cnn-small", bits=16, seed=4)
    sd = dyadic_cnn_small_state(16, seed=4)     # exact forward: see the note at the top
    m.load_state_dict(sd)
    x = dyadic_images(2, seed=4)
    g = np.random.default_rng(1).standard_normal((2, 16)).astype(np.float32)
    pixels = [(0, 0, 5, 5), (1, 2, 17, 30), (0, 1, 31, 0), (1, 0, 12, 13)]
    checked, _ = fd_check(m, sd, x, g, 0.7, pixels, h=1e-4)
    assert checked == len(pixels)


def test_modes_and_repr():
    m = HashingModel("cnn-small", bits=8)
    assert not m.training
    assert m.train() is m and m.training
    assert m.eval() is m and not m.training
    assert "cnn-small" in repr(m)


def test_normalisation_applied_inside():
    sd = dyadic_cnn_small_state(8, seed=2)
    m = HashingModel("cnn-small", bits=8, seed=0)
    np.testing.assert_array_equal(m.mean, [0, 0, 0])
    np.testing.assert_array_equal(m.std, [1, 1, 1])
    # dyadic mean and power-of-two std: (x − m)·(1/s) is then exact in float32, like the layers
    mean, std = np.array([0.375, 0.5, 0.625], np.float32), np.array([0.5, 0.5, 1.0], np.float32)
    m2 = HashingModel("cnn-small", bits=8, seed=0, mean=mean, std=std)
    m2.load_state_dict(sd)
    np.testing.assert_array_equal(m2.mean, mean)
    x = dyadic_images(5, seed=3)
    normed = (x.astype(np.float64) - mean[None, :, None, None]) / std[None, :, None, None]
    # the same weights on pre-normalised input without internal normalisation give the same output
    ref, bound, exact = cnn_small_reference(sd, normed, 1.0)
    assert all(exact), exact
    check_within(m2.forward(x), ref, bound, "normalised forward")


def test_save_load_roundtrip(tmp_path, images):
    m = HashingModel("cnn-small", bits=12, seed=5, mean=[0.1, 0.2, 0.3], std=[0.5, 0.5, 0.5])
    p = tmp_path / "m.npz"
    m.save(p)
    m2 = HashingModel.load(p)
    assert (m2.backbone, m2.bits, m2.seed) == ("cnn-small", 12, 5)
    np.testing.assert_array_equal(m.forward(images), m2.forward(images))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        HashingModel.load(tmp_path / "bad.npz")


def test_load_state_dict_is_strict():
    m = HashingModel("cnn-small", bits=8)
    sd = m.state_dict()
    bad = dict(sd)
    bad.pop("hash_layer.bias")
    with pytest.raises(ValueError, match="hash_layer.bias"):
        m.load_state_dict(bad)
    bad = dict(sd)
    bad["extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="extra.weight"):
        m.load_state_dict(bad)
    bad = dict(sd)
    bad["hash_layer.weight"] = np.zeros((9, 512), np.float32)
    with pytest.raises(ValueError, match="hash_layer.weight"):
        m.load_state_dict(bad)
    bad = dict(sd)
    bad["features.0.bias"] = np.full(32, np.nan, np.float32)
    with pytest.raises(ValueError, match="finite"):
        m.load_state_dict(bad)
    # float64 arrays (e.g. from another framework) are converted
    m.load_state_dict({k: v.astype(np.float64) for k, v in sd.items()})


def test_input_conversions(images):
    m = HashingModel("cnn-small", bits=8, seed=0)
    ref = m.forward(images)
    # float64 (holding float32 values) and Fortran order convert to the very same float32 batch,
    # so the output is the same computation: bitwise equal, on any machine
    np.testing.assert_array_equal(m.forward(images.astype(np.float64)), ref)
    np.testing.assert_array_equal(m.forward(np.asfortranarray(images)), ref)
    # uint8 is scaled by 1/255: the converted pixels are k·fl(1/255) rounded, within γ_2·k/255 of
    # k/255; the forward of uint8 input is the forward of exactly those pixels
    u8 = (images * 255).round().astype(np.uint8)
    x8 = as_images(u8, "x", m.input_shape)
    check_within(x8, u8 / 255.0, gamma(2) * (u8 / 255.0), "uint8 scaling")
    np.testing.assert_array_equal(m.forward(u8), m.forward(x8))
    assert m.forward(np.zeros((0, 3, 32, 32), np.float32)).shape == (0, 8)


@pytest.mark.parametrize("bad,exc,msg", [
    (np.zeros((2, 3, 32, 31), np.float32), ValueError, "'x'.*shape"),
    (np.zeros((3, 32, 32), np.float32), ValueError, "'x'.*single image"),
    (np.zeros((2, 3, 32, 32), np.int32), TypeError, "'x'.*dtype"),
    (np.full((2, 3, 32, 32), np.nan, np.float32), ValueError, "'x'.*finite"),
    (np.full((2, 3, 32, 32), 2.0, np.float32), ValueError, r"'x'.*\[0, 1\]"),
    ("images", TypeError, "'x'"),
])
def test_forward_rejects_bad_input(bad, exc, msg):
    m = HashingModel("cnn-small", bits=8)
    with pytest.raises(exc, match=msg):
        m.forward(bad)


def test_constructor_errors():
    with pytest.raises(ValueError, match="'backbone'"):
        HashingModel("resnet", 32)
    with pytest.raises(ValueError, match="'bits'"):
        HashingModel("cnn-small", 0)
    with pytest.raises(TypeError, match="'bits'"):
        HashingModel("cnn-small", 3.5)
    with pytest.raises(ValueError, match="'std'"):
        HashingModel("cnn-small", 8, std=[1, 0, 1])
    with pytest.raises(ValueError, match="'alpha'"):
        HashingModel("cnn-small", 8).forward(np.zeros((1, 3, 32, 32), np.float32), alpha=0)


def test_core_rejects_foreign_handle():
    with pytest.raises(TypeError, match="'model'.*handle"):
        saat._core.model_forward(object(), np.zeros((1, 3, 32, 32), np.float32), np.zeros((1, 8), np.float32))
    m = HashingModel("cnn-small", bits=8)
    with pytest.raises(ValueError, match="'out'"):
        saat._core.model_forward(m._handle, np.zeros((1, 3, 32, 32), np.float32), np.zeros((1, 9), np.float32))
    with pytest.raises(ValueError, match="'x'.*finite"):
        saat._core.model_forward(m._handle, np.full((1, 3, 32, 32), np.inf, np.float32), np.zeros((1, 8), np.float32))


@pytest.mark.parametrize("backbone,n_params", [("alexnet", 16), ("vgg11", 22)])
def test_paper_backbones_have_torchvision_names(backbone, n_params):
    m = HashingModel(backbone, bits=32, seed=0)
    sd = m.state_dict()
    assert len(sd) == n_params
    assert m.input_shape == (3, 224, 224)
    np.testing.assert_allclose(m.mean, [0.485, 0.456, 0.406], rtol=1e-6)
    # PyTorch default init U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the paper backbones
    assert np.abs(sd["features.0.weight"]).max() <= 1 / np.sqrt(sd["features.0.weight"][0].size) + 1e-6
    if backbone == "alexnet":
        assert sd["features.0.weight"].shape == (64, 3, 11, 11)
        assert sd["classifier.1.weight"].shape == (4096, 9216)
        assert sd["classifier.4.weight"].shape == (4096, 4096)
    else:
        assert sd["features.18.weight"].shape == (512, 512, 3, 3)
        assert sd["classifier.0.weight"].shape == (4096, 25088)
        assert sd["classifier.3.weight"].shape == (4096, 4096)
    assert sd["hash_layer.weight"].shape == (32, 4096)


def test_input_gradient_many_pixels_float64_reference():
    """150 random pixels, nonzero biases, normalisation and alpha: VJP vs float64 central differences."""
    rng = np.random.default_rng(3)
    # dyadic mean and power-of-two std keep the forward exact (see the note at the top)
    mean, std = [0.375, 0.5, 0.625], [0.5, 0.5, 1.0]
    m = HashingModel("cnn-small", bits=8, seed=0, mean=mean, std=std)
    sd = dyadic_cnn_small_state(8, seed=3)
    m.load_state_dict(sd)
    x = dyadic_images(2, seed=3)
    g = rng.standard_normal((2, 8)).astype(np.float32)
    pixels = [tuple(int(rng.integers(0, s)) for s in x.shape) for _ in range(150)]
    checked, _ = fd_check(m, sd, x, g, 0.6, pixels, h=1e-5, mean=mean, std=std)
    assert checked >= 100, checked      # the rest straddle a kink (fixed by the data, not the machine)


@pytest.mark.parametrize("alpha,norm", [(1.0, False), (0.6, True)])
def test_input_gradient_every_pixel_matches_float64_vjp(alpha, norm):
    """Every pixel of saat's input gradient against the float64 reference VJP, within the derived
    bound of the float32 backward (see cnn_small_input_gradient)."""
    mean, std = ([0.375, 0.5, 0.625], [0.5, 0.5, 1.0]) if norm else (None, None)
    m = HashingModel("cnn-small", bits=16, seed=0, **(dict(mean=mean, std=std) if norm else {}))
    sd = dyadic_cnn_small_state(16, seed=6)
    m.load_state_dict(sd)
    x = dyadic_images(3, seed=6)
    g = np.random.default_rng(6).standard_normal((3, 16)).astype(np.float32)
    ref, bound = cnn_small_input_gradient(sd, x, g, float(np.float32(alpha)), mean, std)
    check_within(m.input_gradient(x, g, alpha=alpha), ref, bound, "input gradient")
    assert np.abs(ref).max() > 20 * bound.max()      # the bound is far below the signal
