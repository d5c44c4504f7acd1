"""saat.kernels against numpy: sgemm (OpenBLAS) and popcount Hamming distances."""
import os
import numpy as np
import pytest

import saat
from saat import kernels
from _bounds import SAFETY, check_within, gamma


def test_info_reports_build():
    d = saat.info()
    assert d["version"] == saat.__version__
    assert "OpenBLAS" in d["blas"]
    assert d["blas_threads"] >= 1
    assert d["target_cpu"] in {"haswell", "x86-64", "znver4", "znver3", "skylake-avx512", "native", "other"}


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_sgemm_matches_numpy(ta, tb):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((37, 19) if not ta else (19, 37)).astype(np.float32)
    b = rng.standard_normal((19, 23) if not tb else (23, 19)).astype(np.float32)
    a64, b64 = (a.T if ta else a).astype(np.float64), (b.T if tb else b).astype(np.float64)
    ref = a64 @ b64
    out = kernels.sgemm(a, b, trans_a=ta, trans_b=tb)
    assert out.shape == (37, 23)
    # any summation order/blocking/FMA: |out − ref| ≤ γ_k·|A|·|B| (k = 19)
    check_within(out, ref, SAFETY * gamma(19) * (np.abs(a64) @ np.abs(b64)), "sgemm")


def test_sgemm_alpha_beta_accumulates_into_out():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((8, 5)).astype(np.float32)
    b = rng.standard_normal((5, 6)).astype(np.float32)
    c = rng.standard_normal((8, 6)).astype(np.float32)
    a64, b64, c64 = a.astype(np.float64), b.astype(np.float64), c.astype(np.float64)
    ref = 2.0 * (a64 @ b64) + 0.5 * c64
    kernels.sgemm(a, b, c, alpha=2.0, beta=0.5)
    # α·Σ_k a·b + β·c: k products, the α and β products and the final add, in any order:
    # ≤ γ_{k+2}·(|α|·|A|·|B| + |β|·|C|) (k = 5)
    check_within(c, ref, SAFETY * gamma(5 + 2) * (2.0 * np.abs(a64) @ np.abs(b64) + 0.5 * np.abs(c64)), "sgemm α, β")


def test_sgemm_large_square():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((256, 256)).astype(np.float32)
    b = rng.standard_normal((256, 256)).astype(np.float32)
    # against float64 (numpy's float32 a @ b is another kernel's rounding): ≤ γ_256·|A|·|B|
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    check_within(kernels.sgemm(a, b), a64 @ b64, SAFETY * gamma(256) * (np.abs(a64) @ np.abs(b64)), "sgemm 256")


def test_sgemm_rejects_float64():
    a = np.ones((3, 3))
    with pytest.raises(TypeError, match="'a'.*float32.*float64"):
        kernels.sgemm(a, np.ones((3, 3), np.float32))
    # the raw core entry point gives the same kind of message
    with pytest.raises(TypeError, match="'a'.*float32.*float64"):
        saat._core.sgemm(a, np.ones((3, 3), np.float32), np.zeros((3, 3), np.float32))


def test_sgemm_rejects_wrong_shapes():
    a = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="inner dimensions"):
        kernels.sgemm(a, np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="'out'.*shape"):
        kernels.sgemm(a, np.ones((4, 2), np.float32), np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="'a'.*2-d"):
        saat._core.sgemm(np.ones(3, np.float32), np.ones((4, 2), np.float32), np.zeros((3, 2), np.float32))


def test_sgemm_rejects_non_contiguous_and_read_only():
    a = np.ones((6, 4), np.float32)[::2]
    with pytest.raises(ValueError, match="'a'.*C-contiguous"):
        kernels.sgemm(a, np.ones((4, 2), np.float32))
    with pytest.raises(ValueError, match="'a'.*C-contiguous"):
        saat._core.sgemm(np.ones((4, 3), np.float32).T, np.ones((4, 2), np.float32), np.zeros((3, 2), np.float32))
    out = np.zeros((3, 2), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="'out'.*read-only"):
        kernels.sgemm(np.ones((3, 4), np.float32), np.ones((4, 2), np.float32), out)
    with pytest.raises(ValueError, match="'out'.*read-only"):
        saat._core.sgemm(np.ones((3, 4), np.float32), np.ones((4, 2), np.float32), out)


def test_core_argument_errors():
    with pytest.raises(TypeError, match="missing required argument 'out'"):
        saat._core.sgemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))
    with pytest.raises(TypeError, match="unexpected keyword argument 'gamma'"):
        saat._core.sgemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), gamma=1)
    with pytest.raises(TypeError, match="'a'.*got list"):
        saat._core.sgemm([[1.0]], np.ones((1, 1), np.float32), np.ones((1, 1), np.float32))
    with pytest.raises(ValueError, match="'alpha'.*finite"):
        saat._core.sgemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), alpha=float("nan"))


def test_sgemm_empty_dimensions():
    out = kernels.sgemm(np.ones((0, 3), np.float32), np.ones((3, 4), np.float32))
    assert out.shape == (0, 4)
    out = kernels.sgemm(np.ones((2, 0), np.float32), np.ones((0, 4), np.float32))
    np.testing.assert_array_equal(out, np.zeros((2, 4), np.float32))


def _ref_hamming(q, d):
    return (q[:, None, :] != d[None, :, :]).sum(-1)


@pytest.mark.parametrize("bits", [1, 16, 32, 63, 64, 65, 128, 200])
def test_hamming_distances_match_numpy(bits):
    rng = np.random.default_rng(bits)
    q = np.where(rng.random((13, bits)) > 0.5, 1, -1).astype(np.int8)
    d = np.where(rng.random((29, bits)) > 0.5, 1, -1).astype(np.int8)
    got = kernels.hamming_distances(q, d)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, _ref_hamming(q, d))
    # d_H = (K - q.d) / 2 for ±1 codes
    np.testing.assert_array_equal(got, (bits - q.astype(np.int32) @ d.astype(np.int32).T) // 2)


def test_pack_codes_bits():
    codes = np.array([[1, -1, 1, 1] + [-1] * 60 + [1]], dtype=np.int8)
    packed = kernels.pack_codes(codes)
    assert packed.shape == (1, 2)
    assert int(packed[0, 0]) == 0b1101
    assert int(packed[0, 1]) == 1


def test_hamming_rejects_bad_codes():
    with pytest.raises(TypeError, match="'query'.*int8"):
        kernels.hamming_distances(np.ones((2, 8), np.float32), np.ones((2, 8), np.int8))
    with pytest.raises(ValueError, match="'database'.*shape"):
        saat._core.hamming_distances(np.ones((2, 8), np.int8), np.ones((2, 9), np.int8), np.zeros((2, 2), np.int32))


def test_extension_links_neither_swift_runtime_nor_libpython():
    import shutil
    import subprocess
    if shutil.which("ldd") is None:
        pytest.skip("ldd not available")
    out = subprocess.run(["ldd", saat._core.__file__], capture_output=True, text=True, check=True).stdout
    assert "libswiftCore" not in out and "libswift" not in out, out
    assert "libpython" not in out, out
    assert "libopenblas" in out, out


@pytest.mark.parametrize("backbone, n", [("cnn-small", 7), ("alexnet", 2), ("vgg11", 1)])
def test_set_threads_gives_identical_outputs_and_input_gradients(backbone, n):
    """The network kernels split the batch/features over saat.kernels.set_threads(n) threads:
    outputs and input gradients must be bitwise the same for any n on any CPU, by construction
    (each value is computed by one thread in a GEMM call whose shape does not depend on n: one
    per image for convolutions, fixed blocks of features for the linear layers), and info()
    reports the setting. alexnet and vgg11 have 4096-wide linear layers split into many blocks."""
    rng = np.random.default_rng(3)
    m = saat.HashingModel(backbone, 16, seed=0)
    x = rng.random((n,) + m.input_shape, dtype=np.float32)
    g = rng.standard_normal((n, 16)).astype(np.float32)
    outs = []
    try:
        for t in (1, 2, 3):
            saat.kernels.set_threads(t)
            assert saat.info()["threads"] == t
            outs.append((m.forward(x), m.input_gradient(x, g)))
    finally:
        saat.kernels.set_threads(None)
    assert saat.info()["threads"] == os.cpu_count()
    for f, dx in outs[1:]:
        np.testing.assert_array_equal(f, outs[0][0])
        np.testing.assert_array_equal(dx, outs[0][1])
    assert np.abs(outs[0][1]).max() > 0


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), (257, ValueError),
                                        (1.5, TypeError), (True, TypeError), ("2", TypeError)])
def test_set_threads_rejects_bad_values(bad, error):
    with pytest.raises(error, match="'n'"):
        saat.kernels.set_threads(bad)
    assert saat.info()["threads"] == os.cpu_count()   # unchanged


# (C, O, H, k, stride, padding): every convolution of alexnet and vgg11 at 224×224 (cnn-small's
# two layers are covered by the model references in _bounds).
PAPER_CONVS = [(3, 64, 224, 11, 4, 2), (64, 192, 27, 5, 1, 2), (192, 384, 13, 3, 1, 1), (384, 256, 13, 3, 1, 1),
               (256, 256, 13, 3, 1, 1), (3, 64, 224, 3, 1, 1), (64, 128, 112, 3, 1, 1), (128, 256, 56, 3, 1, 1),
               (256, 256, 56, 3, 1, 1), (256, 512, 28, 3, 1, 1), (512, 512, 28, 3, 1, 1), (512, 512, 14, 3, 1, 1)]


@pytest.mark.parametrize("c,o,h,k,s,p", PAPER_CONVS)
def test_conv2d_at_every_paper_layer_shape_within_its_rounding_bound(c, o, h, k, s, p):
    """saat.kernels.conv2d (direct for ≤ 4 input channels, im2col + sgemm, or Winograd F(4×4, 3×3) /
    F(2×2, 3×3) where it applies) against a float64 direct convolution at the real layer shape
    (one image), within the bound of the algorithm the layer runs: γ_{C·k²+1}·Σ|w·x| + |b| for the
    direct sums, γ_{C+e+1}·(Winograd magnitude + |b|) for Winograd (tests/_bounds.py)."""
    from _bounds import _conv_bounded, U32, uses_winograd
    rng = np.random.default_rng(c * 7 + o + h)
    x = rng.random((1, c, h, h), dtype=np.float32)
    w = (rng.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    y = kernels.conv2d(x, w, b, stride=s, padding=p)
    if s == 1:
        ref, bound, _ = _conv_bounded(x.astype(np.float64), np.zeros(x.shape), w.astype(np.float64),
                                      b.astype(np.float64), p, U32, check_exact=False)
    else:   # the 11×11/4 layer: direct sum over its strided windows
        assert not uses_winograd(w, p, x.shape, s)
        xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p, p), (p, p)))
        oh = (h + 2 * p - k) // s + 1
        win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s][:, :, :oh, :oh]
        ref = np.einsum("ncijuv,ocuv->noij", win, w.astype(np.float64)) + b[None, :, None, None]
        mag = np.einsum("ncijuv,ocuv->noij", np.abs(win), np.abs(w).astype(np.float64)) + np.abs(b)[None, :, None, None]
        bound = gamma(c * k * k + 1) * mag
    check_within(y, ref, SAFETY * bound, f"conv {c}->{o} {k}x{k}/{s} @{h}")
    assert np.abs(y - ref).max() <= 1e-4 * np.abs(ref).max()   # the 1e-4 relative, as a summary
