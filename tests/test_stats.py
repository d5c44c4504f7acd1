"""Confidence intervals, paired comparisons and claim verdicts of the robustness table, on crafted
per-query APs whose answers are known in closed form."""
import math

import numpy as np
import pytest
from scipy.stats import binom, norm

from saat import stats
from saat.experiments import ExperimentConfig, Table, check_claims, compare

B = stats.N_RESAMPLES


def mc_slack(se_mean, level=0.975):
    """Four Monte-Carlo standard errors of a bootstrap quantile estimated from B resamples when
    the bootstrap distribution of the mean is ~normal with sd ``se_mean``: SE = sqrt(p(1-p)/B)
    divided by the density at the quantile."""
    density = norm.pdf(norm.ppf(level)) / se_mean
    return 4 * math.sqrt(level * (1 - level) / B) / density


def test_interval_of_a_mean_matches_the_normal_theory_interval():
    # APs on a uniform grid: mean 1/2, population sd sqrt((n+1)/(12(n-1))) -> the bootstrap (plug-in)
    # distribution of the mean is normal to O(1/n) (symmetric data: no skewness term).
    n = 500
    ap = np.linspace(0, 1, n)
    se = ap.std() / math.sqrt(n)   # plug-in standard error, what the bootstrap estimates
    lo, hi = stats.bootstrap_ci(ap)
    tol = mc_slack(se) + 1e-4
    assert abs(lo - (0.5 - 1.959964 * se)) < tol and abs(hi - (0.5 + 1.959964 * se)) < tol


def test_interval_of_binary_aps_is_the_binomial_quantile_interval():
    # half the queries found nothing (AP 0), half everything (AP 1): the bootstrap mean is
    # Binomial(n, 1/2)/n, whose 2.5 % and 97.5 % quantiles are known exactly; BCa's bias correction
    # on this lattice moves the ends by at most one step 1/n.
    n = 500
    ap = np.r_[np.zeros(n // 2), np.ones(n // 2)]
    lo, hi = stats.bootstrap_ci(ap)
    qlo, qhi = binom.ppf([0.025, 0.975], n, 0.5) / n
    tol = 1 / n + mc_slack(0.5 / math.sqrt(n))
    assert abs(lo - qlo) <= tol and abs(hi - qhi) <= tol


def test_seeds_are_strata_not_one_pooled_sample():
    # Two seeds whose MAPs differ by 0.4: stratified resampling keeps each seed's share, so the
    # interval is that of the within-seed spread only: se = sqrt(s1^2/n + s2^2/n)/2.
    n = 400
    g = np.linspace(0, 0.5, n)
    ap = np.stack([g, g + 0.4])
    se = math.sqrt(g.var() / n + g.var() / n) / 2
    lo, hi = stats.bootstrap_ci(ap)
    tol = mc_slack(se) + 1e-4
    assert abs(lo - (ap.mean() - 1.959964 * se)) < tol and abs(hi - (ap.mean() + 1.959964 * se)) < tol
    # pooling the 2n values as one sample would count the 0.4 between seeds as query noise
    assert hi - lo < 0.6 * (np.subtract(*stats.bootstrap_ci(ap.ravel())[::-1]))


def test_constant_values_give_a_point_interval():
    assert stats.bootstrap_ci(np.zeros(50)) == (0.0, 0.0)
    assert stats.bootstrap_ci(np.full((3, 20), 0.25)) == (0.25, 0.25)


def test_interval_is_seeded():
    ap = np.random.default_rng(3).random(100)
    assert stats.bootstrap_ci(ap, seed=1) == stats.bootstrap_ci(ap, seed=1)


def test_pairing_removes_the_query_variance():
    # b differs from a by exactly +0.01 on every query, while queries vary over [0, 1]: paired, the
    # difference is known exactly; unpaired (b shuffled) it is buried in query noise.
    rng = np.random.default_rng(0)
    a = rng.random((2, 300))
    b = a - 0.01
    d = stats.paired_difference(a, b)
    assert d.difference == pytest.approx(0.01, abs=1e-12)
    assert d.ci[0] == pytest.approx(0.01, abs=1e-12) and d.ci[1] == pytest.approx(0.01, abs=1e-12)
    assert d.p_value <= 2 / (B + 1) and d.n_pairs == 600
    shuffled = stats.paired_difference(a, b[:, rng.permutation(300)])
    assert shuffled.ci[1] - shuffled.ci[0] > 0.05 and stats.verdict(shuffled.ci, ">") is None


def test_paired_difference_with_a_factor_and_known_null():
    rng = np.random.default_rng(1)
    a = rng.random(200)
    d = stats.paired_difference(2 * a, a, factor=2.0)
    assert d.difference == 0 and d.ci == (0.0, 0.0) and d.p_value == 1.0
    # a symmetric null: the p-value is not small
    noise = rng.standard_normal(400) * 0.1
    assert stats.paired_difference(0.5 + noise, 0.5 - noise[::-1]).p_value > 0.01


def test_verdicts():
    assert stats.verdict((-0.03, -0.01), "<") is True
    assert stats.verdict((0.01, 0.03), "<") is False
    assert stats.verdict((-0.01, 0.02), "<") is None
    assert stats.verdict((-0.01, 0.02), ">") is None
    assert stats.verdict((0.01, 0.02), ">") is True
    with pytest.raises(ValueError, match="direction"):
        stats.verdict((0, 1), "=")


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="'ap'.*finite"):
        stats.bootstrap_ci([0.1, float("nan"), 0.3])
    with pytest.raises(ValueError, match="'ap'.*at least 2 queries"):
        stats.bootstrap_ci([0.1])
    with pytest.raises(ValueError, match="'a' and 'b'"):
        stats.paired_difference(np.zeros(5), np.zeros(6))
    with pytest.raises(ValueError, match="'confidence'"):
        stats.bootstrap_ci(np.arange(5.0), confidence=1.5)


def _crafted_table(n=200, seeds=(0, 1)):
    """A table with known per-query APs: SAAT clearly below PGD, HAG straddling SAAT, SAAT training
    keeping 3x the undefended MAP, CgAT tied with ATRDH."""
    rng = np.random.default_rng(7)
    base = rng.random((len(seeds), n)) * 0.4
    pq = {
        (32, "none", "clean"): base + 0.5,
        (32, "none", "saat"): base * 0.25,
        (32, "none", "pgd"): base * 0.25 + 0.1,
        (32, "none", "hag"): base * 0.25 + rng.normal(0, 0.05, base.shape),   # same mean, noise: undecided
        (32, "saat", "saat"): base * 0.75,
        (32, "cgat", "saat"): base * 0.5,
        (32, "atrdh", "saat"): base * 0.5 + rng.normal(0, 0.05, base.shape),
    }
    rows = {}
    for (b, d, c), v in pq.items():
        rows.setdefault((b, d), {"bits": b, "defence": d})[c] = float(v.mean())
    return Table(list(rows.values()), ExperimentConfig(seeds=seeds), per_query=pq)


def test_compare_pairs_the_same_queries_and_seeds():
    t = _crafted_table()
    c = compare(t, ("none", "saat"), ("none", "pgd"))
    assert c.difference == pytest.approx(-0.1, abs=1e-12) and c.ci[1] == pytest.approx(-0.1, abs=1e-12)
    assert c.paired_by == "query" and c.n_pairs == 400
    c = compare(t, ("saat", "saat"), ("none", "saat"), factor=2.0)
    assert c.paired_by == "query and seed"
    assert c.difference == pytest.approx(t.per_query[(32, "saat", "saat")].mean()
                                         - 2 * t.per_query[(32, "none", "saat")].mean())
    # swapping the seeds of one side breaks the pairing, and the comparison sees it
    swapped = _crafted_table()
    swapped.per_query[(32, "none", "pgd")] = swapped.per_query[(32, "none", "pgd")][::-1]
    # (paired: a point interval; swapped: d has sd 0.25*0.4*sqrt(2/12) = 0.041 over 400 pairs, width ~0.008)
    ci = compare(swapped, ("none", "saat"), ("none", "pgd")).ci
    assert ci[1] - ci[0] > 0.004
    with pytest.raises(ValueError, match="'b'.*no per-query results"):
        compare(t, ("none", "saat"), ("none", "sdha"))
    with pytest.raises(TypeError, match="'a'"):
        compare(t, "saat", ("none", "pgd"))


def test_claims_hold_fail_or_stay_undecided():
    claims = {c["claim"]: c for c in check_claims(_crafted_table())}
    pgd = claims["32 bits: the SAAT attack gives lower MAP than the PGD attack on the undefended model"]
    assert pgd["holds"] is True and pgd["ci"][1] < 0
    hag = claims["32 bits: the SAAT attack gives lower MAP than the HAG attack on the undefended model"]
    assert hag["ci"][0] <= 0 <= hag["ci"][1] and hag["holds"] is None
    twice = claims["32 bits: SAAT training keeps at least twice the undefended MAP under the SAAT attack"]
    assert twice["holds"] is True and twice["factor"] == 2.0
    cg = claims["32 bits: CgAT training keeps more MAP than ATRDH under the SAAT attack"]
    assert cg["holds"] is None
    # claims without their cells are skipped, not guessed
    assert not any("SDHA" in text or "targeted" in text for text in claims)


def test_table_round_trips_through_json(tmp_path):
    t = _crafted_table()
    t.claims = check_claims(t)
    t.save(tmp_path / "t.json")
    u = Table.load(tmp_path / "t.json")
    assert u.rows == t.rows and u.claims == t.claims and u.config == t.config
    assert all(np.array_equal(u.per_query[k], v) for k, v in t.per_query.items())
    assert compare(u, ("none", "saat"), ("none", "pgd")) == compare(t, ("none", "saat"), ("none", "pgd"))
