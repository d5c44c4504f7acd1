"""Clean training through the Swift epoch loop: loss goes down on real images, retrieval beats
chance, determinism, checkpoints/resume, progress callbacks and argument errors."""
import os

import numpy as np
import pytest

import saat
from saat import metrics
from conftest import state_copy


def test_trained_model_retrieves_well_above_chance(trained, small_data):
    h = trained["history"]
    assert h[-1] < 0.8 * h[0], h
    m = trained["model"]
    q = small_data.query
    mp = metrics.map_at_k(m.encode(q.images), trained["db_codes"], q.labels, small_data.database.labels, k=1000)
    # chance: MAP of random codes on the same data
    rng = np.random.default_rng(0)
    rand = np.where(rng.random((q.images.shape[0], 16)) > 0.5, 1, -1).astype(np.int8)
    chance = metrics.map_at_k(rand, trained["db_codes"], q.labels, small_data.database.labels, k=1000)
    assert mp > chance + 0.15, (mp, chance)


def test_two_hundred_sgd_steps_lower_the_loss(small_data):
    """Issue 3's training smoke test: 200 SGD steps on real images lower the loss clearly (CSQ,
    the pointwise loss that learns from scratch; the pairwise losses are checked below)."""
    mean, std = saat.training.channel_stats(small_data.train.images)
    m = saat.HashingModel("cnn-small", bits=16, seed=1, mean=mean, std=std)
    x, y = small_data.train.images[:640], small_data.train.labels[:640]
    res = saat.train(m, x, y, loss="csq", epochs=10, batch_size=32, lr=0.01, seed=1, progress=False)   # 20 x 10
    assert len(res.history) == 10
    assert res.history[-1] < 0.8 * res.history[0], res.history


def test_same_seed_same_weights(small_data):
    x, y = small_data.train.images[:96], small_data.train.labels[:96]
    ws = []
    for _ in range(2):
        m = saat.HashingModel("cnn-small", bits=8, seed=2)
        saat.train(m, x, y, epochs=2, batch_size=16, seed=5, progress=False)
        ws.append(m.state_dict())
    for k in ws[0]:
        np.testing.assert_array_equal(ws[0][k], ws[1][k])
    m = saat.HashingModel("cnn-small", bits=8, seed=2)
    saat.train(m, x, y, epochs=2, batch_size=16, seed=6, progress=False)
    assert not np.array_equal(m.state_dict()["hash_layer.weight"], ws[0]["hash_layer.weight"])


@pytest.fixture(scope="module")
def pretrained_base(small_data):
    x, y = small_data.train.images[:512], small_data.train.labels[:512]
    mean, std = saat.training.channel_stats(x)
    base = saat.HashingModel("cnn-small", bits=16, seed=0, mean=mean, std=std)
    saat.training.pretrain_backbone(base, x, y, epochs=3, progress=False)
    return base, x, y


@pytest.mark.parametrize("loss", ["dpsh", "dph", "hashnet", "dsdh", "dch", "csq"])
def test_every_loss_trains(loss, pretrained_base):
    base, x, y = pretrained_base
    m = saat.HashingModel("cnn-small", bits=16, seed=0, mean=base.mean, std=base.std)
    m.load_state_dict(base.state_dict())
    res = saat.train(m, x, y, loss=loss, epochs=3, batch_size=32, lr=0.0005, seed=0, progress=False)
    assert np.isfinite(res.history).all()
    assert not np.array_equal(m.state_dict()["hash_layer.weight"], base.state_dict()["hash_layer.weight"])
    if loss != "dpsh":
        # DPSH's quantisation term weighs eta*K/N (SAAT's normalisation): at N = 512 it dominates
        # and the epoch loss need not fall; test_dpsh_on_a_larger_training_set covers DPSH.
        assert res.history[-1] < res.history[0], (loss, res.history)


def test_dpsh_on_a_larger_training_set():
    """DPSH (SAAT constants) on 2000 real images after backbone pretraining: the loss falls and
    retrieval beats the pretrained backbone with a random hash layer."""
    d = saat.datasets.mosaic(n_train=2000, n_database=2000, n_query=100, seed=1)
    mean, std = saat.training.channel_stats(d.train.images)
    m = saat.HashingModel("cnn-small", bits=16, seed=0, mean=mean, std=std)
    saat.training.pretrain_backbone(m, d.train.images, d.train.labels, epochs=3, progress=False)

    def mp():
        m.eval()
        return metrics.map_at_k(m.encode(d.query.images), m.encode(d.database.images), d.query.labels,
                                d.database.labels, k=1000)

    before = mp()
    res = saat.train(m, d.train.images, d.train.labels, loss="dpsh", epochs=4, lr=0.0005, seed=0, progress=False)
    # epoch 0 is scored against a memory U that is still partly zero (θ = 0 for unseen items), so
    # compare with epoch 1, the first one against a full memory
    assert res.history[-1] < res.history[1], res.history
    assert mp() > before, before


def test_checkpoint_resume_matches_uninterrupted(tmp_path, small_data):
    x, y = small_data.train.images[:80], small_data.train.labels[:80]
    ref = saat.HashingModel("cnn-small", bits=8, seed=4)
    ref_hist = saat.train(ref, x, y, epochs=3, batch_size=16, seed=2, progress=False).history
    ck = tmp_path / "ck.npz"

    calls = []

    def stop_after_7(epoch, batch, batches, loss, lr):
        calls.append((epoch, batch))
        return len(calls) < 7   # returning False stops the run

    m = saat.HashingModel("cnn-small", bits=8, seed=4)
    with pytest.raises(KeyboardInterrupt):
        saat.train(m, x, y, epochs=3, batch_size=16, seed=2, progress=stop_after_7, checkpoint=ck, checkpoint_every=2)
    assert ck.exists() and calls[-1] == (1, 1)
    m2 = saat.HashingModel("cnn-small", bits=8, seed=99)
    hist = saat.train(m2, x, y, epochs=3, batch_size=16, seed=2, progress=False, resume=ck, checkpoint=ck,
                      checkpoint_every=2).history
    assert hist == ref_hist
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(m2.state_dict()[k], v)


def test_corrupt_or_foreign_checkpoint(tmp_path, small_data):
    x, y = small_data.train.images[:32], small_data.train.labels[:32]
    m = saat.HashingModel("cnn-small", bits=8)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="bad.npz.*truncated or corrupted"):
        saat.train(m, x, y, epochs=1, progress=False, resume=bad)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        saat.train(m, x, y, epochs=1, progress=False, resume=tmp_path / "missing.npz")
    ck = tmp_path / "dph.npz"
    saat.train(m, x, y, loss="dph", epochs=1, batch_size=16, progress=False, checkpoint=ck, checkpoint_every=1)
    with pytest.raises(ValueError, match="train:dph.*train:dpsh"):
        saat.train(m, x, y, loss="dpsh", epochs=1, batch_size=16, progress=False, resume=ck)
    with pytest.raises(ValueError, match="'resume'.*epochs"):
        saat.train(m, x, y, loss="dph", epochs=2, batch_size=16, progress=False, resume=ck)


def test_progress_callback_exception_propagates(small_data):
    x, y = small_data.train.images[:32], small_data.train.labels[:32]
    m = saat.HashingModel("cnn-small", bits=8)

    def boom(*a):
        raise RuntimeError("from callback")

    with pytest.raises(RuntimeError, match="from callback"):
        saat.train(m, x, y, epochs=1, batch_size=16, progress=boom)


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(epochs=0), ValueError, "'epochs'"),
    (dict(batch_size=0), ValueError, "'batch_size'"),
    (dict(lr=-1.0), ValueError, "'lr'"),
    (dict(lr=float("nan")), ValueError, "'lr'"),
    (dict(loss="nope"), ValueError, "'loss'"),
    (dict(milestones=(1.5,)), ValueError, "'milestones'"),
    (dict(progress="yes"), TypeError, "'progress'"),
    (dict(checkpoint_every=3), ValueError, "'checkpoint'"),
])
def test_train_argument_errors(kwargs, exc, msg, small_data):
    x, y = small_data.train.images[:16], small_data.train.labels[:16]
    with pytest.raises(exc, match=msg):
        saat.train(saat.HashingModel("cnn-small", bits=8), x, y, **{"progress": False, **kwargs})


def test_train_data_errors(small_data):
    m = saat.HashingModel("cnn-small", bits=8)
    x, y = small_data.train.images[:16], small_data.train.labels[:16]
    with pytest.raises(ValueError, match="'labels'.*rows"):
        saat.train(m, x, y[:15], progress=False)
    with pytest.raises(ValueError, match="'labels'.*0/1"):
        saat.train(m, x, y * 2, progress=False)
    with pytest.raises(ValueError, match="'images'.*empty"):
        saat.train(m, x[:0], y[:0], progress=False)
    with pytest.raises(TypeError, match="'model'"):
        saat.train(None, x, y, progress=False)


def test_train_warns_when_the_codes_collapse(small_data, trained):
    # One label for every image: DPSH's likelihood pulls all codes together, and 3 epochs from
    # scratch end with every training image on one code.
    x = small_data.train.images[:128]
    y = np.zeros((128, small_data.train.labels.shape[1]), np.uint8)
    y[:, 0] = 1
    m = saat.HashingModel("cnn-small", 16, seed=0)
    with pytest.warns(metrics.CollapseWarning, match=r"saat.train: the training images' codes: 128 of 128 codes"):
        saat.train(m, x, y, loss="dpsh", epochs=3, batch_size=32, lr=0.01, seed=0, progress=False)
    # The session's trained model (MAP well above chance) spreads its codes.
    assert metrics.code_spread(trained["db_codes"]).commonest_share < 0.2
