"""Attacks through the Swift core: ε-ball and [0,1] invariants, determinism, effect on retrieval,
guide codes, and argument errors."""
import numpy as np
import pytest

import saat
from saat import attacks as A
from saat import metrics

EPS = 8 / 255


def make(name, tr, data, steps=None):
    m, tc, dbc = tr["model"], tr["train_codes"], tr["db_codes"]
    tl, dl = data.train.labels, data.database.labels
    return {
        "pgd": lambda: A.PGD(m, steps=steps or 10),
        "saat": lambda: A.SAATAttack(m, tc, tl, steps=steps or 30),
        "saat_t": lambda: A.SAATAttack(m, tc, tl, steps=steps or 30, targeted=True),
        "center": lambda: A.CenterAttack(m, tc, tl, steps=steps or 30, step=1 / 255),
        "hag": lambda: A.HAG(m, steps=steps or 30),
        "sdha": lambda: A.SDHA(m, tc, tl, steps=steps or 30),
        "sdha_t": lambda: A.SDHA(m, tc, tl, steps=steps or 30, targeted=True),
        "dhta": lambda: A.DHTA(m, dbc, dl, steps=steps or 30),
        "p2p": lambda: A.P2P(m, dbc, dl, steps=steps or 30),
        "tha": lambda: A.THA(m, dbc, dl, prototype_steps=300, steps=steps or 30),
    }[name]()


ALL = ["pgd", "saat", "saat_t", "center", "hag", "sdha", "sdha_t", "dhta", "p2p", "tha"]


@pytest.fixture(scope="module")
def queries(small_data):
    q = small_data.query
    targets = A.select_target_labels(q.labels[:24], small_data.database.labels, seed=1)
    return q.images[:24], q.labels[:24], targets


@pytest.mark.parametrize("name", ALL)
def test_invariants_and_determinism(name, trained, small_data, queries):
    x, y, t = queries
    atk = make(name, trained, small_data, steps=8)
    labels = t if atk.targeted else y
    adv = atk(x[:6], labels[:6] if atk.needs_labels else None)
    assert adv.shape == x[:6].shape and adv.dtype == np.float32
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    eps = atk.eps
    assert np.abs(adv - x[:6]).max() <= eps + 1e-6
    assert np.abs(adv - x[:6]).max() > 0.5 / 255, "the attack moved the images"
    again = make(name, trained, small_data, steps=8)(x[:6], labels[:6] if atk.needs_labels else None)
    np.testing.assert_array_equal(adv, again)


@pytest.mark.parametrize("name", ["pgd", "saat", "center", "hag", "sdha"])
def test_non_targeted_attacks_lower_map(name, trained, small_data, queries):
    x, y, _ = queries
    m, dbc, dl = trained["model"], trained["db_codes"], small_data.database.labels
    clean = metrics.map_at_k(m.encode(x), dbc, y, dl, k=1000)
    adv = make(name, trained, small_data)(x, y if name != "pgd" and name != "hag" else None)
    attacked = metrics.map_at_k(m.encode(adv), dbc, y, dl, k=1000)
    assert attacked < clean - 0.05, (name, clean, attacked)


@pytest.mark.parametrize("name", ["saat_t", "dhta", "p2p", "tha", "sdha_t"])
def test_targeted_attacks_raise_tmap(name, trained, small_data, queries):
    x, _, t = queries
    m, dbc, dl = trained["model"], trained["db_codes"], small_data.database.labels
    before = metrics.t_map_at_k(m.encode(x), dbc, t, dl, k=1000)
    after = metrics.t_map_at_k(m.encode(make(name, trained, small_data)(x, t)), dbc, t, dl, k=1000)
    assert after > before + 0.05, (name, before, after)


def test_saat_attack_exposes_mainstay_codes(trained, small_data, queries):
    x, y, _ = queries
    atk = make("saat", trained, small_data, steps=2)
    atk(x, y)
    np.testing.assert_array_equal(atk.last_codes, saat.codes.mainstay(y, trained["train_codes"], small_data.train.labels))


def test_evaluate_attack_reports_theory_and_perceptibility(trained, small_data, queries):
    x, y, t = queries
    m = trained["model"]
    res = saat.evaluate_attack(m, make("saat", trained, small_data), x, y, trained["db_codes"],
                               small_data.database.labels, k=1000)
    assert res["adv_map"] < res["clean_map"]
    assert 0 <= res["theory_map"] <= res["clean_map"]
    assert res["max_abs"] <= EPS + 1e-6 and res["mse"] > 0 and res["linf"] > res["max_abs"]
    res_t = saat.evaluate_attack(m, make("saat_t", trained, small_data), x, y, trained["db_codes"],
                                 small_data.database.labels, k=1000, target_labels=t)
    assert res_t["adv_tmap"] > res_t["clean_tmap"]
    with pytest.raises(TypeError, match="target_labels"):
        saat.evaluate_attack(m, make("saat_t", trained, small_data), x, y, trained["db_codes"], small_data.database.labels)


def test_select_target_labels(small_data):
    q = small_data.query.labels[:50]
    t = A.select_target_labels(q, small_data.database.labels, seed=3)
    assert t.shape == q.shape
    assert ((q * t).sum(1) == 0).all(), "targets share no class with the query"
    uniq = {tuple(r) for r in small_data.database.labels}
    assert all(tuple(r) in uniq for r in t)
    np.testing.assert_array_equal(t, A.select_target_labels(q, small_data.database.labels, seed=3))


def test_attack_argument_errors(trained, small_data, queries):
    m = trained["model"]
    x, y, _ = queries
    with pytest.raises(ValueError, match="'eps'"):
        A.PGD(m, eps=-0.1)
    with pytest.raises(ValueError, match="'steps'"):
        A.PGD(m, steps=0)
    with pytest.raises(TypeError, match="'steps'"):
        A.PGD(m, steps=2.5)
    with pytest.raises(ValueError, match="'step'"):
        A.PGD(m, step=0)
    with pytest.raises(TypeError, match="'model'"):
        A.PGD("model")
    atk = A.SAATAttack(m, trained["train_codes"], small_data.train.labels, steps=1)
    with pytest.raises(ValueError, match="'labels'.*columns"):
        atk(x[:2], np.ones((2, 7), np.float32))
    with pytest.raises(ValueError, match="'labels'.*rows"):
        atk(x[:2], y[:3])
    with pytest.raises(TypeError, match="'labels'"):
        atk(x[:2])
    with pytest.raises(ValueError, match="'images'.*\\[0, 1\\]"):
        atk(x[:2] * 3, y[:2])
    with pytest.raises(ValueError, match="'train_codes'"):
        A.SAATAttack(m, np.zeros((3, 16)), small_data.train.labels[:3])
    with pytest.raises(ValueError, match="'train_codes'.*columns"):
        A.SAATAttack(m, np.ones((3, 8)), small_data.train.labels[:3])
    with pytest.raises(ValueError, match="'labels'.*occur in db_labels"):
        A.DHTA(m, trained["db_codes"], small_data.database.labels, steps=1)(x[:1], np.ones((1, 20), np.float32))
    assert atk(x[:0], y[:0]).shape == (0, 3, 32, 32)
