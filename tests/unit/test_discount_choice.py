"""Which code an email carries: every branch of choose_code."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from remarket_mailer.domain.discount_choice import (
    CodeFacts,
    FromPool,
    Generate,
    NoCode,
    Reuse,
    SkipStep,
    choose_code,
)
from remarket_mailer.domain.workflow import DiscountSpec


def spec(**fields: Any) -> DiscountSpec:
    return DiscountSpec(kind="percent", value=Decimal("10"), **fields)


def test_a_step_without_a_discount_sends_no_code() -> None:
    assert choose_code(CodeFacts(None, has_step_code=True)) == NoCode()


def test_a_generated_code_for_a_step_without_a_pool() -> None:
    assert choose_code(CodeFacts(spec(prefix="CART", length=8))) == Generate("CART", 8)


@pytest.mark.parametrize("pool", [None, "winback"])
@pytest.mark.parametrize("reuse", [False, True])
def test_the_code_the_step_already_holds_is_sent_again(pool: str | None, reuse: bool) -> None:
    # A retry after a transient error, a replay under an idempotency key: the same code.
    facts = CodeFacts(spec(pool=pool, reuse=reuse), has_step_code=True, has_earlier_code=True)
    assert choose_code(facts) == Reuse(own_step=True)


def test_a_reuse_step_sends_the_enrollments_earlier_code() -> None:
    assert choose_code(CodeFacts(spec(reuse=True), has_earlier_code=True)) == Reuse(False)


def test_a_reuse_step_with_no_earlier_code_gets_its_own() -> None:
    assert choose_code(CodeFacts(spec(reuse=True, prefix="L"))) == Generate("L", 10)
    pooled = CodeFacts(spec(reuse=True, pool="vip"))
    assert choose_code(pooled) == FromPool("vip")


def test_without_reuse_an_earlier_code_is_not_sent() -> None:
    assert choose_code(CodeFacts(spec(), has_earlier_code=True)) == Generate("", 10)


@pytest.mark.parametrize("when", ["skip_step", "send_without_code", "generate"])
def test_a_pool_step_takes_from_the_pool_first(when: Any) -> None:
    assert choose_code(CodeFacts(spec(pool="vip", when_exhausted=when))) == FromPool("vip")


def test_an_empty_pool_skips_the_step_by_default() -> None:
    facts = CodeFacts(spec(pool="vip"), pool_exhausted=True)
    assert choose_code(facts) == SkipStep("discount pool 'vip' is empty")


def test_an_empty_pool_may_send_without_a_code() -> None:
    facts = CodeFacts(spec(pool="vip", when_exhausted="send_without_code"), pool_exhausted=True)
    assert choose_code(facts) == NoCode()


def test_an_empty_pool_may_fall_back_to_a_generated_code() -> None:
    facts = CodeFacts(
        spec(pool="vip", when_exhausted="generate", prefix="VIP", length=12), pool_exhausted=True
    )
    assert choose_code(facts) == Generate("VIP", 12)
