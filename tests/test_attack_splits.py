"""Attacks called on a split query set, and attacks and models through pickle (how
saat.distributed ships them to workers): ``atk(x)`` equals, bit for bit, the concatenation of
``atk(x[a:b], first_index=a)`` over any split, because image i's random choices come from the
stream (seed, first_index + i) and its result never depends on the other images of the call."""
import pickle

import numpy as np
import pytest

import saat
from saat import attacks as A

STEPS = 3


@pytest.fixture(scope="module")
def setup():
    """A tiny mosaic and a cnn-small model trained for a few CSQ epochs (codes that are not all
    alike, so the guide codes and anchor items differ between images), with its codes."""
    d = saat.datasets.mosaic(n_train=160, n_database=300, n_query=8, seed=0)
    mean, std = saat.training.channel_stats(d.train.images)
    m = saat.HashingModel("cnn-small", bits=16, seed=0, mean=mean, std=std)
    saat.train(m, d.train.images, d.train.labels, loss="csq", epochs=3, batch_size=32, lr=0.01, seed=0, progress=False)
    m.eval()
    targets = A.select_target_labels(d.query.labels, d.database.labels, seed=1)
    return {"data": d, "model": m, "train_codes": m.encode(d.train.images), "db_codes": m.encode(d.database.images),
            "targets": targets}


def make(name, s, seed=0):
    m, tc, dbc = s["model"], s["train_codes"], s["db_codes"]
    tl, dl = s["data"].train.labels, s["data"].database.labels
    return {
        "pgd": lambda: A.PGD(m, steps=STEPS, seed=seed),
        "saat": lambda: A.SAATAttack(m, tc, tl, steps=STEPS, seed=seed),
        "saat_t": lambda: A.SAATAttack(m, tc, tl, steps=STEPS, targeted=True, seed=seed),
        "center": lambda: A.CenterAttack(m, tc, tl, steps=STEPS, seed=seed),
        "hag": lambda: A.HAG(m, steps=STEPS),
        "sdha": lambda: A.SDHA(m, tc, tl, steps=STEPS),
        "dhta": lambda: A.DHTA(m, dbc, dl, steps=STEPS, seed=seed),
        "p2p": lambda: A.P2P(m, dbc, dl, steps=STEPS, seed=seed),
    }[name]()


ALL = ["pgd", "saat", "saat_t", "center", "hag", "sdha", "dhta", "p2p"]
RANDOM_START = ["pgd", "saat", "saat_t", "center"]   # random_start=True by default
NO_RANDOMNESS = ["hag", "sdha"]                      # no seed parameter: nothing drawn at all


def call(atk, s, a, b, **kw):
    """atk on queries a:b with their true labels (non-targeted) or target labels (targeted)."""
    x = s["data"].query.images
    labels = (s["targets"] if atk.targeted else s["data"].query.labels) if atk.needs_labels else None
    return atk(x[a:b], None if labels is None else labels[a:b], **kw)


@pytest.mark.parametrize("name", ALL)
def test_split_calls_equal_the_whole_call(name, setup):
    atk = make(name, setup)
    x = setup["data"].query.images
    whole = call(atk, setup, 0, 8)
    # the attack did something (so equality is not that of unchanged images)
    assert np.abs(whole - x).max(axis=(1, 2, 3)).min() > 0.5 / 255, name
    parts = [call(atk, setup, 0, 3), call(atk, setup, 3, 8, first_index=3)]
    np.testing.assert_array_equal(whole, np.concatenate(parts))
    np.testing.assert_array_equal(whole[4:5], call(atk, setup, 4, 5, first_index=4))
    # numpy integers are ints too
    np.testing.assert_array_equal(whole[4:5], call(atk, setup, 4, 5, first_index=np.int64(4)))
    # the guide codes of a split call are the rows of the whole call's
    if atk.last_codes is not None:
        call(atk, setup, 0, 8)
        codes = atk.last_codes.copy()
        call(atk, setup, 4, 5, first_index=4)
        np.testing.assert_array_equal(atk.last_codes, codes[4:5])


@pytest.mark.parametrize("name", RANDOM_START)
def test_first_index_selects_the_random_stream(name, setup):
    """Image 4 attacked as if it were image 5 starts elsewhere in the ε-ball: another result,
    so the stream (seed, index) matters; and another seed changes it too."""
    atk = make(name, setup)
    row4 = call(atk, setup, 4, 5, first_index=4)
    assert not np.array_equal(row4, call(atk, setup, 4, 5, first_index=5)), name
    assert not np.array_equal(row4, call(make(name, setup, seed=1), setup, 4, 5, first_index=4)), name


@pytest.mark.parametrize("name", NO_RANDOMNESS)
def test_first_index_does_not_change_a_deterministic_attack(name, setup):
    atk = make(name, setup)
    np.testing.assert_array_equal(call(atk, setup, 4, 5, first_index=4), call(atk, setup, 4, 5, first_index=7))


@pytest.mark.parametrize("bad,exc", [(-1, ValueError), (2**31, ValueError), (1.0, TypeError), (1.5, TypeError),
                                     (True, TypeError), ("3", TypeError), (None, TypeError)])
def test_first_index_errors(bad, exc, setup):
    atk = make("pgd", setup)
    with pytest.raises(exc, match="'first_index'"):
        call(atk, setup, 0, 2, first_index=bad)


@pytest.mark.parametrize("name", ALL)
def test_pickled_attack_gives_identical_images(name, setup):
    atk = make(name, setup)
    copy = pickle.loads(pickle.dumps(atk))
    assert type(copy) is type(atk) and copy.params == atk.params and copy.targeted == atk.targeted
    assert copy.model is not atk.model
    np.testing.assert_array_equal(call(copy, setup, 0, 8), call(atk, setup, 0, 8))
    np.testing.assert_array_equal(call(copy, setup, 4, 5, first_index=4), call(atk, setup, 4, 5, first_index=4))
    if atk.last_codes is not None:
        np.testing.assert_array_equal(copy.last_codes, atk.last_codes)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_pickled_model_is_identical(mode, setup):
    m = saat.HashingModel("cnn-small", bits=16, seed=0)
    m.load_state_dict(setup["model"].state_dict())
    m.set_normalisation(setup["model"].mean, setup["model"].std)
    m.train(mode == "train")
    copy = pickle.loads(pickle.dumps(m))
    assert copy.training == (mode == "train")
    assert (copy.backbone, copy.bits, copy.seed) == (m.backbone, m.bits, m.seed)
    np.testing.assert_array_equal(copy.mean, m.mean)
    np.testing.assert_array_equal(copy.std, m.std)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(copy.state_dict()[k], v)
    x = setup["data"].query.images
    np.testing.assert_array_equal(copy.forward(x), m.forward(x))
    g = np.random.default_rng(0).standard_normal((x.shape[0], 16)).astype(np.float32)
    np.testing.assert_array_equal(copy.input_gradient(x, g), m.input_gradient(x, g))
    # an independent model: changing the copy leaves the original alone
    copy.eval() if mode == "train" else copy.train()
    assert m.training == (mode == "train")
