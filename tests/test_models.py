"""HashingModel through the Swift core: forward against an independent numpy implementation,
input gradients against finite differences, state dicts, modes, save/load and input checks."""
import numpy as np
import pytest

import saat
from saat.models import HashingModel


# ----------------------------------------------------------------- numpy reference (independent)
def np_conv2d(x, w, b, pad):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    out = np.zeros((n, o, oh, ow), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + oh, j:j + ow]  # (n, c, oh, ow)
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out + b[None, :, None, None]


def np_maxpool2(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def np_cnn_small(sd, x, alpha=1.0):
    x = x.astype(np.float64)
    h = np_maxpool2(np.maximum(np_conv2d(x, sd["features.0.weight"], sd["features.0.bias"], 1), 0))
    h = np_maxpool2(np.maximum(np_conv2d(h, sd["features.3.weight"], sd["features.3.bias"], 1), 0))
    h = h.reshape(h.shape[0], -1)
    h = np.maximum(h @ sd["classifier.0.weight"].T + sd["classifier.0.bias"], 0)
    z = h @ sd["hash_layer.weight"].T + sd["hash_layer.bias"]
    return np.tanh(alpha * z)


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
def test_forward_matches_numpy_reference(images, alpha):
    m = HashingModel("cnn-small", bits=32, seed=1)
    sd = m.state_dict()
    # a larger hash layer so the outputs span tanh's range
    sd["hash_layer.weight"] = sd["hash_layer.weight"] * 5
    m.load_state_dict(sd)
    got = m.forward(images, alpha=alpha)
    ref = np_cnn_small({k: v.astype(np.float64) for k, v in sd.items()}, images, alpha)
    assert got.shape == (5, 32) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-4)
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


def test_input_gradient_matches_finite_differences(images):
    m = HashingModel("cnn-small", bits=16, seed=4)
    sd = m.state_dict()
    sd["hash_layer.weight"] *= 4
    m.load_state_dict(sd)
    x = images[:2].astype(np.float64)
    rng = np.random.default_rng(1)
    g = rng.standard_normal((2, 16)).astype(np.float32)
    grad = m.input_gradient(images[:2], g, alpha=0.7)
    ref_sd = {k: v.astype(np.float64) for k, v in sd.items()}
    f = lambda xx: float((np_cnn_small(ref_sd, xx, 0.7) * g).sum())  # noqa: E731
    h = 1e-4
    for idx in [(0, 0, 5, 5), (1, 2, 17, 30), (0, 1, 31, 0), (1, 0, 12, 13)]:
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        fd = (f(xp) - f(xm)) / (2 * h)
        assert abs(fd - grad[idx]) <= 2e-3 * max(1.0, abs(fd)), (idx, fd, grad[idx])


def test_modes_and_repr():
    m = HashingModel("cnn-small", bits=8)
    assert not m.training
    assert m.train() is m and m.training
    assert m.eval() is m and not m.training
    assert "cnn-small" in repr(m)


def test_normalisation_applied_inside(images):
    m = HashingModel("cnn-small", bits=8, seed=0)
    np.testing.assert_array_equal(m.mean, [0, 0, 0])
    np.testing.assert_array_equal(m.std, [1, 1, 1])
    mean, std = np.array([0.5, 0.4, 0.3], np.float32), np.array([0.2, 0.25, 0.3], np.float32)
    m2 = HashingModel("cnn-small", bits=8, seed=0, mean=mean, std=std)
    np.testing.assert_allclose(m2.mean, mean)
    normed = (images - mean[None, :, None, None]) / std[None, :, None, None]
    # the same weights on pre-normalised input without internal normalisation give the same output
    ref = np_cnn_small({k: v.astype(np.float64) for k, v in m.state_dict().items()}, normed)
    np.testing.assert_allclose(m2.forward(images), ref, atol=1e-4)


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
    np.testing.assert_allclose(m.forward(images.astype(np.float64)), ref, atol=1e-6)
    np.testing.assert_allclose(m.forward(np.asfortranarray(images)), ref, atol=1e-6)
    u8 = (images * 255).round().astype(np.uint8)
    np.testing.assert_allclose(m.forward(u8), m.forward(u8.astype(np.float32) / 255), atol=1e-6)
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
    m = HashingModel("cnn-small", bits=8, seed=0, mean=[0.4, 0.5, 0.6], std=[0.5, 0.25, 0.3])
    sd = m.state_dict()
    sd["hash_layer.weight"] *= 4
    for k in sd:
        if k.endswith("bias"):
            sd[k] = rng.uniform(-0.05, 0.05, sd[k].shape).astype(np.float32)
    m.load_state_dict(sd)
    x = rng.uniform(0.05, 0.95, (2, 3, 32, 32)).astype(np.float32)
    g = rng.standard_normal((2, 8)).astype(np.float32)
    grad = m.input_gradient(x, g, alpha=0.6)
    ref = {k: v.astype(np.float64) for k, v in sd.items()}
    mean = np.array([0.4, 0.5, 0.6])[None, :, None, None]
    std = np.array([0.5, 0.25, 0.3])[None, :, None, None]
    f = lambda xx: float((np_cnn_small(ref, (xx - mean) / std, 0.6) * g).sum())  # noqa: E731
    bad = []
    for _ in range(150):
        idx = tuple(int(rng.integers(0, s)) for s in x.shape)
        xp, xm = x.astype(np.float64), x.astype(np.float64)
        xp[idx] += 1e-5
        xm[idx] -= 1e-5
        fd = (f(xp) - f(xm)) / 2e-5
        if abs(fd - grad[idx]) > 1e-3 + 1e-2 * abs(fd):
            bad.append((idx, fd, grad[idx]))
    assert len(bad) <= 2, bad   # at most a rare kink straddle
