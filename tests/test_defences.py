"""Adversarial training (SAAT, CgAT, ATRDH): tiny end-to-end runs with finite losses, changed
weights, bit-exact resume, and robustness gained against the SAAT attack."""
import numpy as np
import pytest

import saat
from saat import defences as D
from conftest import state_copy


@pytest.mark.parametrize("name", ["saat", "cgat", "atrdh"])
def test_tiny_run_changes_weights_and_resumes_exactly(name, trained, small_data, tmp_path):
    x, y = small_data.train.images[:64], small_data.train.labels[:64]
    base = trained["model"]
    kw = dict(epochs=2, batch_size=16, steps=2, seed=3)
    ref = state_copy(base)
    hist = D.DEFENCES[name](ref, **kw).fit(x, y, progress=False).history
    assert len(hist) == 2 and np.isfinite(hist).all()
    changed = [k for k, v in ref.state_dict().items() if not np.array_equal(v, base.state_dict()[k])]
    assert "hash_layer.weight" in changed and "features.0.weight" in changed

    ck = tmp_path / f"{name}.npz"
    m = state_copy(base)
    n = []
    with pytest.raises(KeyboardInterrupt):
        D.DEFENCES[name](m, **kw).fit(x, y, progress=lambda *a: n.append(a) or len(n) < 6,
                                      checkpoint=ck, checkpoint_every=1)
    m2 = state_copy(base)
    hist2 = D.DEFENCES[name](m2, **kw).fit(x, y, progress=False, resume=ck).history
    assert hist2 == hist
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(m2.state_dict()[k], v, err_msg=k)


def test_inner_attack_respects_eps_ball(trained, small_data):
    """The inner attack is the engine's PGD with these settings; check its invariant directly."""
    m = trained["model"]
    x, y = small_data.train.images[:16], small_data.train.labels[:16]
    atk = saat.attacks.CenterAttack(m, trained["train_codes"], small_data.train.labels, eps=8 / 255, step=2 / 255, steps=7)
    adv = atk(x, y)
    assert np.abs(adv - x).max() <= 8 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1


def test_defence_argument_errors(trained):
    m = trained["model"]
    with pytest.raises(ValueError, match="'epochs'"):
        D.SAATTraining(m, epochs=0)
    with pytest.raises(ValueError, match="'lambda_adv'"):
        D.SAATTraining(m, lambda_adv=-1)
    with pytest.raises(ValueError, match="'eps'"):
        D.CgATTraining(m, eps=2)
    with pytest.raises(ValueError, match="'adv_weight'"):
        D.ATRDH(m, adv_weight=float("inf"))
    with pytest.raises(TypeError, match="'model'"):
        D.SAATTraining(object())
