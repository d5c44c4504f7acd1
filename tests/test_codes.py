"""saat.codes against an independent numpy implementation of DMFL mainstay and CHCM center codes."""
import numpy as np
import pytest

import saat
from _bounds import SAFETY, gamma


def np_codes(kind, y, codes, labels, sums=False):
    """Straight from the definitions (SAAT adv_attack.py / CgAT central_adv_train.py), float64.
    With sums=True also returns the weighted sums s whose signs the codes are."""
    inter = y @ labels.T
    out = np.zeros((y.shape[0], codes.shape[1]))
    sall = np.zeros_like(out)
    for i in range(y.shape[0]):
        pos = inter[i] > 0
        neg = ~pos
        if kind == "mainstay":
            cos = inter[i] / (np.linalg.norm(y[i]) * np.linalg.norm(labels, axis=1) + 1e-8)
            wp = np.where(pos, cos, 0.0)
        else:
            wp = pos.astype(float)
        s = np.zeros(codes.shape[1])
        if pos.any():
            s += (wp / wp.sum()) @ codes
        if neg.any():
            s -= codes[neg].mean(0)
        out[i] = np.sign(np.where(np.abs(s) < 1e-9, 0, s))
        sall[i] = s
    return (out, sall) if sums else out


@pytest.mark.parametrize("kind", ["mainstay", "center"])
def test_codes_match_numpy(kind):
    rng = np.random.default_rng(0)
    codes = np.where(rng.random((300, 32)) > 0.5, 1, -1).astype(np.int8)
    labels = (rng.random((300, 10)) > 0.8).astype(np.float32)
    labels[np.arange(300), rng.integers(0, 10, 300)] = 1
    y = (rng.random((25, 10)) > 0.75).astype(np.float32)
    fn = getattr(saat.codes, kind)
    got = fn(y, codes, labels)
    assert got.dtype == np.int8 and got.shape == (25, 32)
    ref, s = np_codes(kind, y.astype(float), codes.astype(float), labels.astype(float), sums=True)
    if kind == "mainstay":
        # The signs are compared exactly, so every sum must be farther from 0 than saat's rounding
        # can move it. Center codes, and mainstay rows without positives (−mean negative code),
        # are integer arithmetic, exact in any order (so a true 0 stays 0). Otherwise saat's
        # cosine weights w_j are float32 (two square roots, a product, + 1e-8, a division:
        # relative γ_6), Σ_j w_j·b_j is an sgemm over N = 300 terms, then s·|N|·Σw is float64: in
        # units of s the error is ≤ γ_{N+6} + γ_6 (|mean negative code| ≤ 1).
        e_s = SAFETY * (gamma(300 + 6) + gamma(6))
        has_pos = (y @ labels.T > 0).any(1)
        assert np.abs(s[has_pos]).min() > e_s, "a mainstay sum is within rounding of 0: pick other data"
    np.testing.assert_array_equal(got, ref)


def test_zero_cases_documented():
    codes = np.array([[1, 1, -1], [-1, -1, 1]], np.int8)
    labels = np.array([[1, 0], [1, 0]], np.float32)
    # two positives with opposite codes, no negatives: exact tie -> 0 in every bit
    np.testing.assert_array_equal(saat.codes.center([[1, 0]], codes, labels), [[0, 0, 0]])
    # no positives: minus the mean negative code
    np.testing.assert_array_equal(saat.codes.mainstay([[0, 1]], codes[:1], labels[:1]), [[-1, -1, 1]])
    # a label row with no class has no positives
    np.testing.assert_array_equal(saat.codes.center([[0, 0]], codes[:1], labels[:1]), [[-1, -1, 1]])


def test_mainstay_differs_from_center_by_semantic_weights():
    codes = np.array([[1], [-1]], np.int8)
    labels = np.array([[1, 0], [1, 1]], np.float32)
    assert saat.codes.mainstay([[1, 1]], codes, labels)[0, 0] == -1   # the closer item wins
    assert saat.codes.center([[1, 1]], codes, labels)[0, 0] == 0      # uniform weights tie


def test_codes_bad_input():
    codes = np.ones((4, 8), np.int8)
    labels = np.eye(4, dtype=np.float32)
    with pytest.raises(ValueError, match="'train_codes'.*-1, \\+1"):
        saat.codes.mainstay(np.eye(4)[:1], np.zeros((4, 8)), labels)
    with pytest.raises(ValueError, match="'train_labels'.*rows"):
        saat.codes.mainstay(np.eye(4)[:1], codes, labels[:3])
    with pytest.raises(ValueError, match="'labels'.*columns"):
        saat.codes.center(np.ones((1, 5)), codes, labels)
    with pytest.raises(ValueError, match="'labels'.*0/1"):
        saat.codes.center(np.full((1, 4), 0.5), codes, labels)
    with pytest.raises(ValueError, match="'labels'.*finite"):
        saat.codes.center(np.full((1, 4), np.nan), codes, labels)
    assert saat.codes.center(np.zeros((0, 4)), codes, labels).shape == (0, 8)
