"""Holdout lift, A/B variant results and the automatic winner rule."""

from __future__ import annotations

from decimal import Decimal

import pytest

from remarket_mailer.domain.attribution import WindowOutcome
from remarket_mailer.domain.experiments import (
    Arm,
    WinnerRule,
    arms_by_variant,
    decide_winner,
    holdout_lift,
    variant_results,
)
from remarket_mailer.domain.stats import newcombe_difference, relative_lift


def arm(recipients: int, conversions: int, order_value: float = 50.0) -> Arm:
    return Arm(
        recipients,
        conversions,
        tuple(order_value if i < conversions else 0.0 for i in range(recipients)),
    )


def test_holdout_lift_reports_rates_revenue_and_intervals() -> None:
    treated, holdout = arm(900, 45), arm(100, 2)
    lift = holdout_lift(treated, holdout, bootstrap_resamples=500)
    assert lift.treated.conversion_rate.value == pytest.approx(0.05)
    assert lift.holdout.conversion_rate.value == pytest.approx(0.02)
    assert lift.treated.revenue == Decimal("2250.00")
    assert lift.treated.revenue_per_recipient == pytest.approx(2.5)
    c = lift.comparison
    assert c.rate_difference == newcombe_difference(45, 900, 2, 100)
    assert c.relative_lift == relative_lift(45, 900, 2, 100)
    assert c.relative_lift is not None and c.relative_lift.value == pytest.approx(1.5)
    assert c.revenue_difference is not None
    assert c.revenue_difference.value == pytest.approx(2.5 - 1.0)
    assert c.revenue_bootstrap is not None and c.revenue_bootstrap.contains(1.5)
    assert c.p_value is not None and 0 < c.p_value < 1


def test_a_small_holdout_says_how_many_contacts_are_needed() -> None:
    lift = holdout_lift(arm(900, 45), arm(100, 2), bootstrap_resamples=0)
    assert not lift.comparison.significant
    needed = lift.comparison.contacts_needed
    assert needed is not None and needed > 1000
    assert lift.more_contacts_needed == needed - 1000
    # At ten times the size, the same rates are significant and no more contacts are needed.
    big = holdout_lift(arm(9000, 450), arm(1000, 20), bootstrap_resamples=0)
    assert big.comparison.significant and big.more_contacts_needed == 0
    assert big.comparison.contacts_needed == needed


def test_equal_rates_need_no_finite_sample() -> None:
    lift = holdout_lift(arm(500, 10), arm(500, 10), bootstrap_resamples=0)
    assert lift.comparison.contacts_needed is None and lift.more_contacts_needed is None


def test_an_empty_holdout_gives_no_lift_but_no_error() -> None:
    lift = holdout_lift(arm(300, 9), arm(0, 0), bootstrap_resamples=100)
    c = lift.comparison
    assert (c.rate_difference.low, c.rate_difference.high) == (-1.0, 1.0)
    assert c.relative_lift is None and c.p_value is None and c.revenue_difference is None
    assert c.revenue_bootstrap is None and c.contacts_needed is None


def test_arms_are_built_from_window_outcomes() -> None:
    outcomes = [
        ("a", WindowOutcome(True, 1, Decimal("30.00"))),
        ("b", WindowOutcome(False, 0, Decimal("0"))),
        ("a", WindowOutcome(False, 0, Decimal("0"))),
        ("a", WindowOutcome(True, 2, Decimal("45.50"))),
    ]
    arms = arms_by_variant(outcomes)
    assert list(arms) == ["a", "b"]
    assert arms["a"] == Arm(3, 2, (30.0, 0.0, 45.5))
    assert arms["a"].total_revenue == Decimal("75.50")
    with pytest.raises(ValueError, match="one value per recipient"):
        Arm(2, 1, (1.0,))
    with pytest.raises(ValueError, match="not within"):
        Arm(2, 3, (1.0, 2.0))


def test_variant_results_compare_each_with_the_baseline() -> None:
    results = variant_results({"a": arm(1000, 30), "b": arm(1000, 55), "c": arm(1000, 31)})
    assert [r.variant for r in results] == ["a", "b", "c"]
    assert results[0].against_baseline is None
    b = results[1].against_baseline
    assert b is not None and b.rate_difference.value == pytest.approx(0.025) and b.significant
    other = variant_results({"a": arm(10, 1), "b": arm(10, 2)}, baseline="b")
    assert other[1].against_baseline is None and other[0].against_baseline is not None
    with pytest.raises(ValueError, match="baseline"):
        variant_results({"a": arm(10, 1)}, baseline="z")


def test_no_winner_before_every_variant_has_enough_recipients() -> None:
    decision = decide_winner({"a": arm(1200, 20), "b": arm(800, 60)}, WinnerRule(1000))
    assert decision.winner is None and "b has 800" in decision.reason


def test_a_clear_winner_of_two() -> None:
    decision = decide_winner({"a": arm(1500, 30), "b": arm(1500, 70)}, WinnerRule(1000))
    assert decision.winner == "b"
    assert decision.alpha_per_comparison == 0.05
    [(name, p)] = decision.p_values
    assert name == "a" and p is not None and p < 0.05


def test_bonferroni_withholds_a_winner_that_only_beats_one_test_level() -> None:
    """b against a gives p ≈ 0.03: a winner of a two-variant test, but with three variants each
    comparison must reach 0.05 / 2 = 0.025."""
    two = decide_winner({"a": arm(2000, 60), "b": arm(2000, 85)}, WinnerRule(1000))
    assert two.winner == "b"
    [(_, p)] = two.p_values
    assert p is not None and 0.025 < p < 0.05
    three = decide_winner(
        {"a": arm(2000, 60), "b": arm(2000, 85), "c": arm(2000, 20)}, WinnerRule(1000)
    )
    assert three.winner is None and three.alpha_per_comparison == 0.025
    assert "not significantly better than a" in three.reason


def test_identical_variants_have_no_winner() -> None:
    decision = decide_winner({"a": arm(1000, 0), "b": arm(1000, 0)}, WinnerRule(1000))
    assert decision.winner is None
    assert decide_winner({"a": arm(5000, 5)}, WinnerRule()).winner is None
    with pytest.raises(ValueError):
        WinnerRule(alpha=0)
