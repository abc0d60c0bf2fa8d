"""The statistics behind lift and A/B reports, checked against published examples and against
scipy/statsmodels (dev dependencies only: production computes everything itself)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remarket_mailer.domain.stats import (
    Summary,
    bootstrap_mean_difference,
    newcombe_difference,
    regularized_incomplete_beta,
    relative_lift,
    sample_size_two_proportions,
    student_t_cdf,
    student_t_quantile,
    two_proportion_p_value,
    welch_difference,
    wilson_interval,
)

scipy_stats = pytest.importorskip("scipy.stats")
special = pytest.importorskip("scipy.special")
proportion = pytest.importorskip("statsmodels.stats.proportion")
weightstats = pytest.importorskip("statsmodels.stats.weightstats")


# --- published examples -------------------------------------------------------------------


def test_newcombe_1998_table_ii_example_a() -> None:
    """Newcombe (1998), Statistics in Medicine 17:873-890, Table II, example (a): 56/70 vs 48/80,
    method 10 (hybrid score) gives 0.0524 to 0.3339 around the difference 0.8 - 0.6 = 0.2."""
    d = newcombe_difference(56, 70, 48, 80)
    assert d.value == pytest.approx(0.2)
    assert round(d.low, 4) == 0.0524
    assert round(d.high, 4) == 0.3339


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        # Newcombe (1998) Table II example (b), method 10.
        ((9, 10, 3, 10), (0.1705, 0.8090)),
    ],
)
def test_newcombe_1998_table_ii_other_examples(
    counts: tuple[int, int, int, int], expected: tuple[float, float]
) -> None:
    d = newcombe_difference(*counts)
    assert (round(d.low, 4), round(d.high, 4)) == expected


def test_wilson_matches_newcombe_1998_table_i() -> None:
    """Newcombe (1998b) "Two-sided confidence intervals for the single proportion", Table I:
    81/263 by the score method gives 0.2553 to 0.3662."""
    w = wilson_interval(81, 263)
    assert (round(w.low, 4), round(w.high, 4)) == (0.2553, 0.3662)


def test_sample_size_matches_r_power_prop_test_example() -> None:
    """R's documented example ``power.prop.test(p1 = .50, p2 = .75, power = .90)`` gives
    n = 76.65 per group, so 77 recipients."""
    assert sample_size_two_proportions(0.5, 0.75, power=0.9) == 77


# --- against scipy / statsmodels ------------------------------------------------------------

COUNTS = [(0, 10), (1, 10), (5, 10), (10, 10), (3, 1000), (41, 1234), (500, 1000), (1, 2)]


@pytest.mark.parametrize(("x", "n"), COUNTS)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_statsmodels(x: int, n: int, confidence: float) -> None:
    low, high = proportion.proportion_confint(x, n, alpha=1 - confidence, method="wilson")
    w = wilson_interval(x, n, confidence)
    assert w.low == pytest.approx(low, abs=1e-12)
    assert w.high == pytest.approx(high, abs=1e-12)


PAIRS = [(56, 70, 48, 80), (30, 1000, 20, 1000), (3, 400, 9, 350), (120, 4000, 11, 500)]


@pytest.mark.parametrize("counts", PAIRS)
def test_newcombe_matches_statsmodels(counts: tuple[int, int, int, int]) -> None:
    low, high = proportion.confint_proportions_2indep(*counts, method="newcomb")
    d = newcombe_difference(*counts)
    assert (d.low, d.high) == pytest.approx((low, high), abs=1e-12)


@pytest.mark.parametrize("counts", PAIRS)
def test_relative_lift_is_the_katz_log_ratio_interval(counts: tuple[int, int, int, int]) -> None:
    low, high = proportion.confint_proportions_2indep(*counts, method="log", compare="ratio")
    lift = relative_lift(*counts)
    assert lift is not None
    xa, na, xb, nb = counts
    assert lift.value == pytest.approx((xa / na) / (xb / nb) - 1)
    assert (lift.low, lift.high) == pytest.approx((low - 1, high - 1), abs=1e-12)


def test_relative_lift_is_undefined_without_conversions() -> None:
    assert relative_lift(0, 100, 3, 100) is None
    assert relative_lift(3, 100, 0, 100) is None


@pytest.mark.parametrize("counts", PAIRS)
def test_z_test_matches_statsmodels(counts: tuple[int, int, int, int]) -> None:
    xa, na, xb, nb = counts
    _, expected = proportion.proportions_ztest([xa, xb], [na, nb])
    assert two_proportion_p_value(*counts) == pytest.approx(expected, rel=1e-12)


def test_z_test_is_undefined_without_variance() -> None:
    assert two_proportion_p_value(0, 100, 0, 50) is None
    assert two_proportion_p_value(0, 0, 1, 50) is None


@pytest.mark.parametrize(
    ("a", "b", "x"),
    [
        (0.5, 0.5, 0.3),
        (2.5, 0.5, 0.9),
        (30, 0.5, 0.97),
        (1e3, 0.5, 0.999),
        (0.2, 7.0, 0.01),
        (5, 5, 0.5),
    ],
)
def test_incomplete_beta_matches_scipy(a: float, b: float, x: float) -> None:
    assert regularized_incomplete_beta(a, b, x) == pytest.approx(
        special.betainc(a, b, x), rel=1e-11, abs=1e-15
    )


@pytest.mark.parametrize("df", [1.0, 2.0, 3.7, 10.0, 29.5, 200.0, 12_345.6])
@pytest.mark.parametrize("t", [-40.0, -3.1, -1.0, -0.01, 0.0, 0.5, 2.2, 8.0])
def test_t_cdf_matches_scipy(t: float, df: float) -> None:
    assert student_t_cdf(t, df) == pytest.approx(scipy_stats.t.cdf(t, df), rel=1e-10, abs=1e-15)


@pytest.mark.parametrize("t", [-25.0, -1.0, -1.19e-7, 1e-12, 1.19e-7, 3e-4, 0.7, 9.0])
def test_t_cdf_matches_the_closed_forms_for_1_and_2_degrees_of_freedom(t: float) -> None:
    """df = 1 is the Cauchy distribution, df = 2 has an algebraic CDF. Near t = 0 these are
    exact where scipy's own value drifts (at t = 1.19e-7, df = 1 it is off by 7e-11)."""
    assert student_t_cdf(t, 1.0) == pytest.approx(0.5 + math.atan(t) / math.pi, rel=1e-14)
    assert student_t_cdf(t, 2.0) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), rel=1e-14)


@pytest.mark.parametrize("df", [1.0, 2.0, 3.7, 10.0, 29.5, 200.0, 12_345.6])
@pytest.mark.parametrize("p", [0.0005, 0.025, 0.3, 0.5, 0.8, 0.975, 0.9995])
def test_t_quantile_matches_scipy(p: float, df: float) -> None:
    assert student_t_quantile(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-9, abs=1e-12)


def revenue_sample(rng: random.Random, n: int, rate: float) -> list[float]:
    """Revenue per recipient as it looks: mostly 0, a few orders of varying size."""
    return [round(rng.lognormvariate(4, 0.6), 2) if rng.random() < rate else 0.0 for _ in range(n)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_welch_matches_statsmodels(seed: int) -> None:
    rng = random.Random(seed)
    a, b = revenue_sample(rng, 900, 0.05), revenue_sample(rng, 110, 0.03)
    result = welch_difference(Summary.of(a), Summary.of(b))
    assert result is not None
    compare = weightstats.CompareMeans(weightstats.DescrStatsW(a), weightstats.DescrStatsW(b))
    t, p, df = compare.ttest_ind(usevar="unequal")
    low, high = compare.tconfint_diff(usevar="unequal")
    assert result.t == pytest.approx(t, rel=1e-10)
    assert result.df == pytest.approx(df, rel=1e-10)
    assert result.p_value == pytest.approx(p, rel=1e-8)
    assert (result.difference.low, result.difference.high) == pytest.approx((low, high), rel=1e-9)


def test_welch_is_undefined_for_tiny_or_constant_groups() -> None:
    assert welch_difference(Summary.of([1.0]), Summary.of([1.0, 2.0])) is None
    assert welch_difference(Summary.of([0.0, 0.0]), Summary.of([0.0, 0.0, 0.0])) is None


def test_bootstrap_matches_scipy_percentile_bootstrap() -> None:
    rng = random.Random(7)
    a, b = revenue_sample(rng, 400, 0.08), revenue_sample(rng, 300, 0.03)
    ours = bootstrap_mean_difference(a, b, resamples=4000, seed=11)
    assert ours is not None
    theirs = scipy_stats.bootstrap(
        (a, b),
        lambda x, y, axis: x.mean(axis=axis) - y.mean(axis=axis),
        n_resamples=4000,
        method="percentile",
        random_state=12,
    ).confidence_interval
    # Two different random streams: the bounds agree within bootstrap noise, which for 4000
    # resamples is a few percent of the interval's width.
    width = theirs.high - theirs.low
    assert ours.low == pytest.approx(theirs.low, abs=0.08 * width)
    assert ours.high == pytest.approx(theirs.high, abs=0.08 * width)
    assert ours.value == pytest.approx(sum(a) / len(a) - sum(b) / len(b))


def test_bootstrap_is_reproducible_by_seed() -> None:
    rng = random.Random(3)
    a, b = revenue_sample(rng, 200, 0.1), revenue_sample(rng, 200, 0.05)
    first = bootstrap_mean_difference(a, b, resamples=300, seed=5)
    assert first == bootstrap_mean_difference(a, b, resamples=300, seed=5)
    assert first != bootstrap_mean_difference(a, b, resamples=300, seed=6)
    assert bootstrap_mean_difference([], b) is None


@pytest.mark.parametrize(
    ("p_a", "p_b", "ratio"),
    [(0.05, 0.04, 1.0), (0.03, 0.02, 1 / 9), (0.2, 0.3, 2.0), (0.5, 0.75, 1.0)],
)
def test_sample_size_reaches_the_power(p_a: float, p_b: float, ratio: float) -> None:
    """At n the test's power (both tails, unpooled alternative) reaches 80 %; at n - 1 the
    one-tail power the formula solves for is still short of it."""
    n_a = sample_size_two_proportions(p_a, p_b, ratio=ratio)
    assert n_a is not None
    norm = scipy_stats.norm

    def power(n: float) -> float:
        n_b = ratio * n
        pooled = (p_a * n + p_b * n_b) / (n + n_b)
        se0 = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / n_b))
        se1 = math.sqrt(p_a * (1 - p_a) / n + p_b * (1 - p_b) / n_b)
        z = norm.ppf(0.975)
        d = abs(p_a - p_b)
        return float(norm.cdf((d - z * se0) / se1) + norm.cdf((-d - z * se0) / se1))

    assert power(n_a) >= 0.8
    assert power(n_a - 1) < 0.8 + 1e-6


def test_sample_size_for_equal_rates_is_undefined() -> None:
    assert sample_size_two_proportions(0.1, 0.1) is None
    with pytest.raises(ValueError, match="proportion"):
        sample_size_two_proportions(1.5, 0.1)


def test_impossible_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="more successes"):
        wilson_interval(5, 4)
    with pytest.raises(ValueError, match="negative"):
        newcombe_difference(-1, 4, 1, 4)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 4, confidence=1.0)


# --- properties ---------------------------------------------------------------------------

counts = st.integers(min_value=1, max_value=5000).flatmap(
    lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
)
levels = st.sampled_from([0.8, 0.9, 0.95, 0.99])


@given(counts, levels)
def test_wilson_contains_the_rate_within_0_and_1(c: tuple[int, int], confidence: float) -> None:
    w = wilson_interval(*c, confidence)
    assert 0.0 <= w.low <= w.value <= w.high <= 1.0


@given(counts, counts, levels)
def test_newcombe_contains_the_difference_within_minus_1_and_1(
    a: tuple[int, int], b: tuple[int, int], confidence: float
) -> None:
    d = newcombe_difference(*a, *b, confidence)
    assert -1.0 <= d.low <= d.value <= d.high <= 1.0


@given(counts, counts)
def test_newcombe_is_antisymmetric(a: tuple[int, int], b: tuple[int, int]) -> None:
    forward, backward = newcombe_difference(*a, *b), newcombe_difference(*b, *a)
    assert forward.value == pytest.approx(-backward.value, abs=1e-12)
    assert forward.low == pytest.approx(-backward.high, abs=1e-12)
    assert forward.high == pytest.approx(-backward.low, abs=1e-12)


@given(counts)
def test_wilson_is_symmetric_in_successes_and_failures(c: tuple[int, int]) -> None:
    x, n = c
    w, flipped = wilson_interval(x, n), wilson_interval(n - x, n)
    assert w.low == pytest.approx(1 - flipped.high, abs=1e-12)
    assert w.high == pytest.approx(1 - flipped.low, abs=1e-12)


@given(counts, counts)
def test_wider_confidence_gives_wider_intervals(a: tuple[int, int], b: tuple[int, int]) -> None:
    narrow, wide = newcombe_difference(*a, *b, 0.9), newcombe_difference(*a, *b, 0.99)
    assert wide.low <= narrow.low + 1e-12 and narrow.high <= wide.high + 1e-12


@given(st.floats(min_value=-50, max_value=50), st.floats(min_value=0.5, max_value=1e4))
def test_t_cdf_is_symmetric_and_inverted_by_the_quantile(t: float, df: float) -> None:
    assert student_t_cdf(t, df) + student_t_cdf(-t, df) == pytest.approx(1.0, abs=1e-12)
    p = student_t_cdf(t, df)
    if 1e-10 < p < 1 - 1e-10:
        assert student_t_quantile(p, df) == pytest.approx(t, rel=1e-7, abs=1e-7)
