"""Statistics for conversion rates and revenue: intervals, tests and sample sizes.

Pure functions over counts and plain floats; the Student t distribution is computed here from the
regularized incomplete beta function, so nothing beyond the standard library runs in production.
``docs/measuring.md`` says which method answers which question and why; the unit tests check
every function against scipy/statsmodels and against published examples.

All confidence levels are two-sided (``0.95`` means a 95 % interval) and must lie in (0, 1).
Functions raise ``ValueError`` for impossible input (negative counts, more successes than
trials) and return ``None`` where the quantity is undefined for valid input (a ratio over a zero
rate, a variance from one observation).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate with its two-sided confidence interval ``[low, high]``."""

    value: float
    low: float
    high: float
    confidence: float = 0.95

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    @property
    def excludes_zero(self) -> bool:
        """The interval lies wholly on one side of 0: the difference is significant at
        ``1 - confidence``."""
        return self.low > 0.0 or self.high < 0.0


@dataclass(frozen=True, slots=True)
class WelchResult:
    """Welch's unequal-variance t interval and test for ``mean_a - mean_b``."""

    difference: Estimate
    df: float
    t: float
    p_value: float


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")


def _check_counts(successes: int, trials: int) -> None:
    if trials < 0 or successes < 0:
        raise ValueError(f"counts must not be negative: {successes}/{trials}")
    if successes > trials:
        raise ValueError(f"more successes than trials: {successes}/{trials}")


def normal_quantile(p: float) -> float:
    """The standard normal quantile (inverse CDF) at ``p``."""
    return _NORMAL.inv_cdf(p)


def _z(confidence: float) -> float:
    _check_confidence(confidence)
    return normal_quantile(1.0 - (1.0 - confidence) / 2.0)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Estimate:
    """Wilson's score interval for the proportion ``successes / trials``.

    Unlike the textbook ``p ± z·sqrt(p(1-p)/n)`` it stays within [0, 1] and keeps its coverage
    for the small rates of email conversions (1-5 %). With no trials the rate is unknown: the
    estimate is 0 and the interval is [0, 1].
    """
    _check_counts(successes, trials)
    z = _z(confidence)
    if trials == 0:
        return Estimate(0.0, 0.0, 1.0, confidence)
    n = float(trials)
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # Rounding may put a bound a few ulps past the estimate at p = 0 or 1.
    low = 0.0 if successes == 0 else max(0.0, min(p, centre - half))
    high = 1.0 if successes == trials else min(1.0, max(p, centre + half))
    return Estimate(p, low, high, confidence)


def newcombe_difference(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, confidence: float = 0.95
) -> Estimate:
    """Newcombe's hybrid score interval (1998, method 10) for ``p_a - p_b``.

    Built from the two Wilson intervals, so it keeps within [-1, 1] and behaves at rates near
    0 where the Wald interval collapses. With no trials in a group the difference is unknown:
    estimate 0, interval [-1, 1].
    """
    _check_counts(successes_a, trials_a)
    _check_counts(successes_b, trials_b)
    _check_confidence(confidence)
    if trials_a == 0 or trials_b == 0:
        return Estimate(0.0, -1.0, 1.0, confidence)
    a = wilson_interval(successes_a, trials_a, confidence)
    b = wilson_interval(successes_b, trials_b, confidence)
    d = a.value - b.value
    low = d - math.sqrt((a.value - a.low) ** 2 + (b.high - b.value) ** 2)
    high = d + math.sqrt((a.high - a.value) ** 2 + (b.value - b.low) ** 2)
    return Estimate(d, max(-1.0, min(d, low)), min(1.0, max(d, high)), confidence)


def relative_lift(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, confidence: float = 0.95
) -> Estimate | None:
    """Relative lift ``p_a / p_b - 1`` with the Katz log interval for the risk ratio.

    ``None`` when either group has no conversions or no trials: the ratio (or its log
    standard error) is then undefined, and an "infinite lift" helps nobody.
    """
    _check_counts(successes_a, trials_a)
    _check_counts(successes_b, trials_b)
    z = _z(confidence)
    if successes_a == 0 or successes_b == 0:
        return None
    ratio = (successes_a / trials_a) / (successes_b / trials_b)
    se = math.sqrt(1 / successes_a - 1 / trials_a + 1 / successes_b - 1 / trials_b)
    log_ratio = math.log(ratio)
    return Estimate(
        ratio - 1.0,
        math.exp(log_ratio - z * se) - 1.0,
        math.exp(log_ratio + z * se) - 1.0,
        confidence,
    )


def two_proportion_p_value(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int
) -> float | None:
    """Two-sided p-value of the pooled two-proportion z-test of ``p_a = p_b``.

    ``None`` when it is undefined: a group without trials, or no variance at all (both groups
    converted nobody, or everybody).
    """
    _check_counts(successes_a, trials_a)
    _check_counts(successes_b, trials_b)
    if trials_a == 0 or trials_b == 0:
        return None
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    variance = pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b)
    if variance <= 0.0:
        return None
    z = (successes_a / trials_a - successes_b / trials_b) / math.sqrt(variance)
    return min(1.0, 2.0 * _NORMAL.cdf(-abs(z)))


# --- Student t from the regularized incomplete beta function -------------------------------


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b), evaluated by the modified Lentz method
    (Numerical Recipes, 3rd ed., section 6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the CDF of the Beta(a, b) distribution at ``x``."""
    if a <= 0 or b <= 0:
        raise ValueError(f"beta parameters must be positive, got a={a}, b={b}")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    # The fraction converges fast for x < (a+1)/(a+b+2); use the symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` (> 0, not necessarily whole) degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    t2 = t * t
    if t2 < df:
        # Near 0, df / (df + t²) rounds to 1 and loses t: use the complementary argument
        # t² / (df + t²), computed without cancellation (I_x(a, b) = 1 - I_{1-x}(b, a)).
        centre = 0.5 * regularized_incomplete_beta(0.5, df / 2.0, t2 / (df + t2))
        return 0.5 + centre if t > 0 else 0.5 - centre
    tail = 0.5 * regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t2))
    return 1.0 - tail if t > 0 else tail


def student_t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (inverse of the CDF)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be between 0 and 1, got {p}")
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -student_t_quantile(1.0 - p, df)
    # Bracket from the normal quantile outwards (t's tails are heavier), then bisect: the CDF is
    # monotone, so this always converges, to double precision in ~60 steps.
    low = 0.0
    high = max(1.0, normal_quantile(p))
    while student_t_cdf(high, df) < p:
        low, high = high, high * 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if student_t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low <= 1e-13 * max(1.0, high):
            break
    return (low + high) / 2.0


# --- means ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Summary:
    """Count, mean and sample variance (n - 1 denominator) of a sample."""

    n: int
    mean: float
    variance: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        n = len(values)
        if n == 0:
            return cls(0, 0.0, 0.0)
        mean = math.fsum(values) / n
        variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
        return cls(n, mean, variance)


def welch_difference(a: Summary, b: Summary, confidence: float = 0.95) -> WelchResult | None:
    """Welch's t interval and two-sided p-value for ``mean_a - mean_b``.

    Unequal variances are the rule here (revenue per recipient: mostly zeros and a few
    orders). ``None`` when either group has fewer than 2 values or both variances are 0.
    """
    _check_confidence(confidence)
    if a.n < 2 or b.n < 2:
        return None
    va, vb = a.variance / a.n, b.variance / b.n
    se2 = va + vb
    if se2 <= 0.0:
        return None
    se = math.sqrt(se2)
    df = se2 * se2 / (va * va / (a.n - 1) + vb * vb / (b.n - 1))
    d = a.mean - b.mean
    t = d / se
    q = student_t_quantile(1.0 - (1.0 - confidence) / 2.0, df)
    p_value = min(1.0, 2.0 * student_t_cdf(-abs(t), df))
    return WelchResult(Estimate(d, d - q * se, d + q * se, confidence), df, t, p_value)


def bootstrap_mean_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Estimate | None:
    """Percentile bootstrap interval for ``mean(a) - mean(b)``, reproducible by ``seed``.

    Makes no normality assumption, which matters for revenue: a handful of large orders
    dominate the mean. Each resample draws ``len(a)`` and ``len(b)`` values with replacement;
    the cost is ``resamples × (len(a) + len(b))`` draws. ``None`` when a group is empty.
    """
    _check_confidence(confidence)
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not a or not b:
        return None
    rng = random.Random(seed)
    na, nb = len(a), len(b)
    xa, xb = list(a), list(b)
    differences = sorted(
        math.fsum(rng.choices(xa, k=na)) / na - math.fsum(rng.choices(xb, k=nb)) / nb
        for _ in range(resamples)
    )
    alpha = 1.0 - confidence
    low = _percentile(differences, alpha / 2.0)
    high = _percentile(differences, 1.0 - alpha / 2.0)
    d = math.fsum(xa) / na - math.fsum(xb) / nb
    return Estimate(d, min(low, d), max(high, d), confidence)


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default ``linear`` method)."""
    position = q * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    weight = position - lower
    return ordered[lower] * (1.0 - weight) + ordered[upper] * weight


# --- planning ------------------------------------------------------------------------------


def sample_size_two_proportions(
    p_a: float, p_b: float, *, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0
) -> int | None:
    """Recipients needed in group A to tell rate ``p_a`` from ``p_b`` with a two-sided test at
    ``alpha`` with ``power``; group B then needs ``ceil(ratio × n_a)``.

    The normal-approximation formula of Fleiss, Levin & Paik (2003, eq. 4.14, without
    continuity correction), the one R's ``power.prop.test`` solves for equal groups; ``ratio``
    handles a small holdout (``ratio = 0.1/0.9`` for a 10 % holdout). ``None`` when the rates
    are equal: no sample size tells them apart.
    """
    for name, p in (("p_a", p_a), ("p_b", p_b)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a proportion in [0, 1], got {p}")
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise ValueError(f"alpha and power must be between 0 and 1, got {alpha}, {power}")
    if ratio <= 0.0:
        raise ValueError(f"ratio must be positive, got {ratio}")
    if p_a == p_b:
        return None
    z_alpha = normal_quantile(1.0 - alpha / 2.0)
    z_beta = normal_quantile(power)
    pooled = (p_a + ratio * p_b) / (1.0 + ratio)
    numerator = z_alpha * math.sqrt(pooled * (1 - pooled) * (1 + 1 / ratio)) + z_beta * math.sqrt(
        p_a * (1 - p_a) + p_b * (1 - p_b) / ratio
    )
    return math.ceil((numerator / (p_a - p_b)) ** 2 - 1e-9)
