"""saat.attacks.ProSGAN: the generative targeted attack through the Swift core."""
import pickle

import numpy as np
import pytest

import saat

FAST = dict(epochs=1, batch_size=8, prototype_steps=20, prototype_batch=8)


@pytest.fixture(scope="module")
def setup(small_data, trained):
    m = trained["model"]
    x, y = small_data.train.images[:40], small_data.train.labels[:40]
    tc = trained["train_codes"][:40]
    atk = saat.attacks.ProSGAN(m, tc, y, **FAST)
    hist = atk.fit(x, y, progress=False)
    t = saat.attacks.select_target_labels(small_data.query.labels[:12], small_data.database.labels, seed=0)
    return {"model": m, "x": x, "y": y, "tc": tc, "atk": atk, "history": hist.history,
            "q": small_data.query.images[:12], "t": t}


def test_official_names_and_fit(setup):
    atk = setup["atk"]
    sd = atk.state_dict()
    assert "generator.image_encoder.0.weight" in sd and "generator.residual.0.weight" in sd
    assert "discriminator.main.0.weight_bar" in sd and "discriminator.fc.weight" in sd
    assert "prototype_net.classifier.0.weight" in sd
    # 32×32 input: half widths (w = 32), label map from 2×2, 3 discriminator layers ending in a 4×4 kernel
    assert sd["generator.image_encoder.0.weight"].shape == (32, 6, 7, 7)
    assert sd["generator.label_encoder.fc.0.weight"].shape == (64 * 2 * 2, 512)
    assert sd["discriminator.fc.weight"].shape == (setup["y"].shape[1] + 1, 128, 4, 4)
    assert len(setup["history"]) == 1 and np.isfinite(setup["history"][0])


def test_generate_range_codes_and_independence(setup):
    atk, q, t = setup["atk"], setup["q"], setup["t"]
    adv = atk(q, t)
    assert adv.shape == q.shape and adv.dtype == np.float32
    assert adv.min() >= 0 and adv.max() <= 1
    assert not np.array_equal(adv, q)
    codes = atk.last_codes
    assert codes.shape == (12, setup["model"].bits) and set(np.unique(codes)) <= {-1, 1}
    # an image's result does not depend on the others of the call
    np.testing.assert_array_equal(atk(q[3:7], t[3:7]), adv[3:7])
    # same target label -> same prototype code
    same = [i for i in range(12) if np.array_equal(t[i], t[0])]
    assert all(np.array_equal(codes[i], codes[0]) for i in same)


def test_determinism_and_save_load(setup, tmp_path):
    s = setup
    other = saat.attacks.ProSGAN(s["model"], s["tc"], s["y"], **FAST)
    other.fit(s["x"], s["y"], progress=False)
    a, b = s["atk"].state_dict(), other.state_dict()
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    path = tmp_path / "g.npz"
    s["atk"].save(path)
    fresh = saat.attacks.ProSGAN(s["model"], s["tc"], s["y"], **FAST)
    with pytest.raises(ValueError, match="fit"):
        fresh(s["q"], s["t"])
    fresh.load(path)
    np.testing.assert_array_equal(fresh(s["q"], s["t"]), s["atk"](s["q"], s["t"]))
    with np.load(path) as z:
        assert set(z.files) == set(a)
    clone = pickle.loads(pickle.dumps(s["atk"]))
    np.testing.assert_array_equal(clone(s["q"], s["t"]), s["atk"](s["q"], s["t"]))


def test_resume_equals_uninterrupted(setup, tmp_path):
    s = setup
    kw = dict(FAST, epochs=2)
    full = saat.attacks.ProSGAN(s["model"], s["tc"], s["y"], **kw)
    full.fit(s["x"], s["y"], progress=False)
    ck = tmp_path / "ck.npz"
    part = saat.attacks.ProSGAN(s["model"], s["tc"], s["y"], **kw)
    calls = []

    def stop_after_7(epoch, batch, batches, loss, lr):
        calls.append((epoch, batch))
        return len(calls) < 7   # stops in epoch 1 (5 batches per epoch)

    with pytest.raises(KeyboardInterrupt):
        part.fit(s["x"], s["y"], progress=stop_after_7, checkpoint=ck, checkpoint_every=1)
    resumed = saat.attacks.ProSGAN(s["model"], s["tc"], s["y"], **kw)
    resumed.fit(s["x"], s["y"], progress=False, resume=ck)
    a, b = full.state_dict(), resumed.state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_learning_rate_decays_linearly(setup):
    s = setup
    rates = []
    atk = saat.attacks.ProSGAN(s["model"], s["tc"], s["y"], **dict(FAST, epochs=4, lr=1e-3))
    atk.fit(s["x"], s["y"], progress=lambda e, b, n, loss, lr: rates.append((e, lr)))
    per_epoch = sorted(set(rates))
    # 4 epochs: 2 at the full rate, then 1 − 1/3 and 1 − 2/3 of it
    np.testing.assert_allclose([r for _, r in per_epoch], [1e-3, 1e-3, 1e-3 * 2 / 3, 1e-3 / 3], rtol=1e-6)


def test_bad_arguments(setup):
    s = setup
    m, tc, y = s["model"], s["tc"], s["y"]
    with pytest.raises(ValueError, match="epochs"):
        saat.attacks.ProSGAN(m, tc, y, epochs=0)
    with pytest.raises(ValueError, match="rec_weight"):
        saat.attacks.ProSGAN(m, tc, y, rec_weight=-1.0)
    with pytest.raises(ValueError, match="train_codes"):
        saat.attacks.ProSGAN(m, tc[:, :5], y)
    with pytest.raises(ValueError, match="train_labels"):
        saat.attacks.ProSGAN(m, tc, y[:10])
    with pytest.raises(TypeError, match="model"):
        saat.attacks.ProSGAN("model", tc, y)
    atk = s["atk"]
    with pytest.raises(TypeError, match="labels"):
        atk(s["q"])
    with pytest.raises(ValueError, match="labels"):
        atk(s["q"], s["t"][:, :3])
    bad = s["q"].copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="images"):
        atk(bad, s["t"])
    with pytest.raises(ValueError, match="images"):
        atk(s["q"][:, :, :16, :16], s["t"])
    with pytest.raises(ValueError, match="labels"):
        atk.fit(s["x"], s["y"][:, :3], progress=False)
    with pytest.raises(ValueError, match="state"):
        atk.load_state_dict({"generator.residual.0.weight": np.zeros(3, np.float32)})
    assert atk(s["q"][:0], s["t"][:0]).shape == (0, 3, 32, 32)


def test_torch_generator_matches(setup):
    """The official generator built in PyTorch from saat's state_dict gives saat's images."""
    torch = pytest.importorskip("torch")
    s = setup
    sd = s["atk"].state_dict()
    np.testing.assert_allclose(s["atk"](s["q"], s["t"]), _torch_images(torch, sd, s["q"], s["t"]), atol=1e-4, rtol=0)


def test_torch_generator_matches_at_224():
    """At 224×224 saat builds the official sizes (label map from 14×14 at 128 channels, widths 64/128)
    and the official generator built from its state_dict gives its images."""
    torch = pytest.importorskip("torch")
    m = saat.HashingModel("alexnet", 32, seed=0).eval()
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 224, 224), dtype=np.float32)
    y = np.eye(5, dtype=np.float32)[[0, 3]]
    codes = np.where(rng.random((2, 32)) > 0.5, 1, -1).astype(np.float32)
    atk = saat.attacks.ProSGAN(m, codes, y, epochs=1, batch_size=2, prototype_steps=2, prototype_batch=2)
    atk.fit(x, y, progress=False)
    sd = atk.state_dict()
    assert sd["generator.label_encoder.fc.0.weight"].shape == (128 * 14 * 14, 512)
    np.testing.assert_allclose(atk(x, y), _torch_images(torch, sd, x, y), atol=1e-4, rtol=0)


def _torch_images(torch, sd, images, target_labels):
    """The official generator built in PyTorch from the state dict `sd`, run on `images` in [0, 1]
    towards `target_labels`, its output mapped back to [0, 1] as saat's attack does."""
    from _torch_prosgan import official_generator
    g = official_generator(torch, sd)
    with torch.no_grad():
        out = g(torch.from_numpy(2 * images - 1), torch.from_numpy(_feature(torch, sd, target_labels)))[0]
    return ((out + 1) / 2).clamp(0, 1).numpy()


def _feature(torch, sd, labels):
    f = torch.from_numpy(labels.astype(np.float32))
    w0, b0 = (torch.from_numpy(sd[f"prototype_net.feature.0.{n}"]) for n in ("weight", "bias"))
    w2, b2 = (torch.from_numpy(sd[f"prototype_net.feature.2.{n}"]) for n in ("weight", "bias"))
    return (torch.relu(f @ w0.T + b0) @ w2.T + b2).numpy()


def test_raises_tmap(small_data, trained):
    """A few epochs of ProS-GAN already steer the queries towards their targets."""
    m, dbc, dl = trained["model"], trained["db_codes"], small_data.database.labels
    x, t = small_data.query.images[:50], saat.attacks.select_target_labels(small_data.query.labels[:50], dl, seed=0)
    atk = saat.attacks.ProSGAN(m, trained["train_codes"], small_data.train.labels, epochs=3, prototype_steps=300)
    atk.fit(small_data.train.images, small_data.train.labels, progress=False)
    before = saat.metrics.t_map_at_k(m.encode(x), dbc, t, dl, k=1000)
    after = saat.metrics.t_map_at_k(m.encode(atk(x, t)), dbc, t, dl, k=1000)
    assert after > before + 0.05, (before, after)


def test_resume_refuses_another_model(setup, tmp_path, small_data):
    s = setup
    ck = tmp_path / "ck.npz"
    atk = saat.attacks.ProSGAN(s["model"], s["tc"], s["y"], **FAST)
    atk.fit(s["x"], s["y"], progress=False, checkpoint=ck, checkpoint_every=2)
    other = saat.HashingModel("cnn-small", bits=s["model"].bits, seed=7).eval()
    before = other.state_dict()
    with pytest.raises(ValueError, match="resume.*this model"):
        saat.attacks.ProSGAN(other, s["tc"], s["y"], **FAST).fit(s["x"], s["y"], progress=False, resume=ck)
    for k, v in other.state_dict().items():   # the frozen model is left as it was
        np.testing.assert_array_equal(v, before[k])
