"""`sas_jax.analysis.stats`: the incomplete beta, the t tail, the paired t-test and bootstrap
against closed forms and hand-computed cases (scipy, a test-only extra, as a second opinion)."""
import math

import numpy as np
import pytest

from sas_jax.analysis import stats


@pytest.mark.parametrize("a, b, x, want", [
    (1.0, 1.0, 0.3, 0.3),  # I_x(1, 1) = x
    (3.0, 1.0, 0.4, 0.4 ** 3),  # I_x(a, 1) = x^a
    (1.0, 4.0, 0.2, 1 - 0.8 ** 4),  # I_x(1, b) = 1 - (1 - x)^b
    (2.5, 2.5, 0.5, 0.5),  # symmetric
    (7.0, 7.0, 0.5, 0.5),
    (2.0, 2.0, 0.25, 3 * 0.25 ** 2 - 2 * 0.25 ** 3),  # I_x(2, 2) = 3x² - 2x³
    (0.5, 0.5, 0.25, 2 / math.pi * math.asin(0.5)),  # arcsine law: (2/π) asin(√x)
    (40.0, 3.0, 0.9, None),  # the continued fraction's other branch (x past the mode): scipy below
])
def test_betainc_closed_forms(a, b, x, want):
    got = stats.betainc(a, b, x)
    if want is None:
        special = pytest.importorskip("scipy.special")
        want = float(special.betainc(a, b, x))
    assert got == pytest.approx(want, rel=1e-12, abs=1e-14)
    assert stats.betainc(a, b, 0.0) == 0.0 and stats.betainc(a, b, 1.0) == 1.0


def test_betainc_refuses_bad_arguments():
    with pytest.raises(ValueError, match="a, b > 0"):
        stats.betainc(0.0, 1.0, 0.5)
    with pytest.raises(ValueError, match="0 <= x <= 1"):
        stats.betainc(1.0, 1.0, 1.5)


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 2.0, 4.3, 12.7062, 100.0])
def test_t_tail_matches_the_closed_forms_of_1_2_and_3_degrees_of_freedom(t):
    assert stats.t_two_sided_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), abs=1e-13)
    assert stats.t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), abs=1e-13)
    u = t / math.sqrt(3)
    assert stats.t_two_sided_p(t, 3) == pytest.approx(1 - 2 / math.pi * (math.atan(u) + u / (1 + u * u)), abs=1e-13)
    assert stats.t_two_sided_p(-t, 3) == stats.t_two_sided_p(t, 3)  # two-sided


@pytest.mark.parametrize("t, df, p", [
    (12.706204736, 1, 0.05), (4.302652730, 2, 0.05), (2.776445105, 4, 0.05), (2.570581836, 5, 0.05),
    (2.228138852, 10, 0.05), (3.169272673, 10, 0.01), (1.959963985, 1e7, 0.05),  # the normal's 1.96
])
def test_t_tail_at_the_table_critical_values(t, df, p):
    assert stats.t_two_sided_p(t, df) == pytest.approx(p, rel=1e-6)


def test_t_tail_against_scipy():
    sp = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 7, 29, 300):
        for t in (0.05, 0.9, 1.7, 3.3, 8.0, 40.0):
            assert stats.t_two_sided_p(t, df) == pytest.approx(2 * sp.t.sf(t, df), rel=1e-9, abs=1e-15)
    assert stats.t_two_sided_p(math.inf, 4) == 0.0
    with pytest.raises(ValueError, match="df > 0"):
        stats.t_two_sided_p(1.0, 0)


def test_mean_sd():
    assert stats.mean_sd([1.0, 2.0, None, 4.0]) == {"n": 3, "mean": pytest.approx(7 / 3),
                                                     "sd": pytest.approx(math.sqrt(7 / 3)), "note": None}
    one = stats.mean_sd([0.5])
    assert (one["n"], one["mean"], one["sd"]) == (1, 0.5, None) and "1 seed" in one["note"]
    assert stats.mean_sd([None])["mean"] is None


def test_paired_t_test_by_hand():
    # d = a - b = [1, 2, 3]: mean 2, sd 1, t = 2 / (1/√3) = 2√3 on 2 df, p = 1 - t/√(2 + t²) = 1 - √(12/14).
    r = stats.paired_t_test([1.5, 2.5, 3.5], [0.5, 0.5, 0.5])
    assert (r["n"], r["df"], r["mean_diff"], r["sd_diff"]) == (3, 2, 2.0, 1.0) and r["note"] is None
    assert r["t"] == pytest.approx(2 * math.sqrt(3), rel=1e-12)
    assert r["p"] == pytest.approx(1 - math.sqrt(12 / 14), rel=1e-12)
    flipped = stats.paired_t_test([0.5, 0.5, 0.5], [1.5, 2.5, 3.5])
    assert flipped["t"] == pytest.approx(-r["t"]) and flipped["p"] == pytest.approx(r["p"])
    # Pairing matters: the same values unpaired differ by -1, 0, 1 (mean 0: p = 1).
    assert stats.paired_t_test([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])["p"] == pytest.approx(1.0)


def test_paired_t_test_against_scipy():
    sp = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=6), rng.normal(0.4, size=6)
    r, want = stats.paired_t_test(a, b), sp.ttest_rel(a, b)
    assert r["t"] == pytest.approx(want.statistic, rel=1e-12) and r["p"] == pytest.approx(want.pvalue, rel=1e-9)


def test_paired_tests_say_why_they_cannot_decide():
    one = stats.paired_t_test([0.7], [0.6])
    assert one["p"] is None and one["t"] is None and one["note"] == "1 seed in common: a paired test needs 2"
    assert one["mean_diff"] == pytest.approx(0.1)
    same = stats.paired_t_test([0.7, 0.8], [0.6, 0.7])
    assert same["p"] is None and "the same amount" in same["note"] and same["sd_diff"] == pytest.approx(0.0)
    boot = stats.paired_bootstrap([0.7], [0.6])
    assert boot["low"] is None and boot["note"] == "1 seed in common: resampling needs 2"
    with pytest.raises(ValueError, match="equal lengths"):
        stats.paired_t_test([1.0, 2.0], [1.0])


def test_paired_bootstrap_by_hand():
    # d = [1, 2, 3]: a resample's mean is 1 only when all three draws are 1 (1/27 = 3.7 % of resamples,
    # more than the 2.5 % tail) and 3 likewise, so the 95 % percentile interval is exactly [1, 3].
    r = stats.paired_bootstrap([2.0, 3.0, 4.0], [1.0, 1.0, 1.0])
    assert (r["low"], r["high"], r["mean_diff"]) == (1.0, 3.0, 2.0)
    assert (r["resamples"], r["seed"], r["level"], r["n"]) == (10_000, 0, 0.95, 3) and r["note"] is None
    # d = [0, 1, 1, 1, 1, 1, 1, 1, 1, 1]: a resample's mean is 1 - K/10, K ~ Binomial(10, 0.1) zeros drawn.
    # P(mean <= 0.6) = P(K >= 4) = 1.3 % and P(mean <= 0.7) = P(K >= 3) = 7.0 % bracket the 2.5 % tail,
    # so the low end is 0.7; P(mean = 1) = 0.9^10 = 34.9 %, so the high end is 1.
    d = [0.0] + [1.0] * 9
    r = stats.paired_bootstrap(d, [0.0] * 10)
    assert (r["low"], r["high"]) == (pytest.approx(0.7), 1.0)
    # Seeded: the same seed gives the same interval; the resample count is honoured.
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=5), rng.normal(size=5)
    assert stats.paired_bootstrap(a, b) == stats.paired_bootstrap(a, b)
    assert stats.paired_bootstrap(a, b, seed=1) != stats.paired_bootstrap(a, b)
    assert stats.paired_bootstrap(a, b, resamples=50)["resamples"] == 50
    constant = stats.paired_bootstrap([1.0, 2.0], [0.5, 1.5])
    assert (constant["low"], constant["high"]) == (0.5, 0.5)
