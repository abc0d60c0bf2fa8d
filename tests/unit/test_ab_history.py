"""A stored A/B decision read back as history: the winner's p-value against each other variant
from the counts it was decided on, the winner first-class, a malformed entry still shown."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from remarket_mailer.domain.ab_history import winner_record
from remarket_mailer.domain.experiments import Arm, WinnerRule, decide_winner

AT = datetime(2026, 11, 8, 11, tzinfo=UTC)


def test_the_history_recomputes_the_rules_p_values() -> None:
    arms = {"b": Arm(1000, 58, (0.0,) * 1000), "a": Arm(1000, 31, (0.0,) * 1000)}
    decision = decide_winner(arms, WinnerRule(min_recipients=1000, alpha=0.05))
    assert decision.winner == "b"
    stored = {
        v: {"recipients": a.recipients, "conversions": a.conversions} for v, a in arms.items()
    }
    record = winner_record("cart", "first", "b", AT, decision.reason, stored)
    assert [v.variant for v in record.variants] == ["a", "b"]  # by name
    a, b = record.variants
    assert b.p_value is None and b.conversion_rate == pytest.approx(0.058)
    assert a.p_value == pytest.approx(dict(decision.p_values)["a"])  # what the rule saw
    # 58/1000 vs 31/1000, pooled two-proportion z-test: z = 2.93, two-sided p = 0.0034.
    assert a.p_value == pytest.approx(0.0034, abs=0.0001)


def test_a_malformed_stored_arm_is_shown_as_nothing_measured() -> None:
    record = winner_record(
        "cart", "first", "b", AT, "why", {"b": {"recipients": 10, "conversions": 4}, "a": "?"}
    )
    a, b = record.variants
    assert (a.recipients, a.conversions, a.conversion_rate, a.p_value) == (0, 0, None, None)
    assert (b.recipients, b.conversions) == (10, 4)
