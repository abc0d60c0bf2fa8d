"""Trigger and exit matching without a database: the cases the engine tests reach end to end."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from remarket_mailer.domain.workflow import ExitRule, Step, Trigger, Workflow
from remarket_mailer.workflows.matching import (
    ConditionFailed,
    Exit,
    Refresh,
    Start,
    enrollment_key,
    match_exit,
    match_trigger,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CART = Workflow(
    id="abandoned_cart",
    name="Abandoned cart",
    version="v1",
    trigger=Trigger(events=("cart.updated",), key="cart_id", filter="cart.total >= 20"),
    steps=(Step("reminder_1", timedelta(hours=1), "t"),),
    exits=(ExitRule("order.placed", "key"), ExitRule("order.placed", "contact")),
)
BROWSE = Workflow(
    id="browse",
    name="Browse",
    version="v1",
    trigger=Trigger(events=("product.viewed",), key="contact", reenter_after=timedelta(days=7)),
    steps=(Step("look", timedelta(hours=2), "t"),),
)
RENEWAL = Workflow(
    id="renewal",
    name="Renewal",
    version="v1",
    trigger=Trigger(events=("subscription.upserted",), key="subscription_id"),
    steps=(Step("notice", timedelta(0), "t"),),
    exits=(ExitRule("subscription.cancelled", "key"),),
)


@dataclass
class Event:
    type: str = "cart.updated"
    occurred_at: datetime = T0
    event_id: str = "evt-1"
    cart_id: str | None = "cart-1"
    subscription_id: str | None = None
    renews_at: datetime | None = None


@dataclass
class Enrollment:
    key: str
    started_at: datetime = T0
    status: str = "active"
    contact_id: int = 7


@dataclass
class Held:
    """An in-memory batch: what ingest holds after the events before this one."""

    rows: dict[tuple[str, str], Enrollment] = field(default_factory=dict)
    starts: dict[tuple[str, int], datetime] = field(default_factory=dict)

    def by_key(self, workflow_id: str, key: str) -> Enrollment | None:
        return self.rows.get((workflow_id, key))

    def active(self, workflow_id: str, contact_id: int) -> list[Enrollment]:
        return [
            e
            for (w, _), e in self.rows.items()
            if w == workflow_id and e.contact_id == contact_id and e.status == "active"
        ]

    def active_by_key(self, workflow_id: str, key: str) -> list[Enrollment]:
        return [
            e
            for (w, k), e in self.rows.items()
            if w == workflow_id and e.status == "active" and (k == key or k.startswith(key + "@"))
        ]

    def last_start(self, workflow_id: str, contact_id: int) -> datetime | None:
        return self.starts.get((workflow_id, contact_id))


def context(total: int = 50) -> Mapping[str, Any]:
    return {"cart": {"total": total}, "contact": {}, "event": {}}


def test_a_new_cart_over_the_minimum_starts() -> None:
    assert match_trigger(CART, Event(), 7, context, Held()) == Start(CART, "cart-1")


def test_filter_false_disabled_or_no_key_is_nothing() -> None:
    assert match_trigger(CART, Event(), 7, lambda: context(5), Held()) is None
    assert match_trigger(replace(CART, enabled=False), Event(), 7, context, Held()) is None
    assert match_trigger(CART, Event(cart_id=None), 7, context, Held()) is None


def test_a_failing_filter_is_reported_not_raised() -> None:
    outcome = match_trigger(CART, Event(), 7, lambda: {"cart": {"total": "x"}}, Held())
    assert isinstance(outcome, ConditionFailed) and outcome.workflow is CART


def test_the_context_is_only_built_for_a_filter() -> None:
    def explode() -> Mapping[str, Any]:
        raise AssertionError("built without a filter")

    plain = replace(CART, trigger=replace(CART.trigger, filter=None))
    assert match_trigger(plain, Event(), 7, explode, Held()) == Start(plain, "cart-1")


def test_a_newer_update_of_a_running_cart_refreshes_an_older_one_does_nothing() -> None:
    running = Enrollment("cart-1", started_at=T0)
    held = Held({("abandoned_cart", "cart-1"): running})
    later = Event(occurred_at=T0 + timedelta(minutes=5))
    assert match_trigger(CART, later, 7, context, held) == Refresh(CART, running)
    assert match_trigger(CART, Event(occurred_at=T0), 7, context, held) is None


@pytest.mark.parametrize("status", ["exited", "completed"])
def test_a_key_is_enrolled_at_most_once(status: str) -> None:
    held = Held({("abandoned_cart", "cart-1"): Enrollment("cart-1", status=status)})
    later = Event(occurred_at=T0 + timedelta(days=1))
    assert match_trigger(CART, later, 7, context, held) is None


def test_contact_keyed_one_at_a_time_and_not_again_within_reenter_after() -> None:
    view = Event(type="product.viewed", cart_id=None, event_id="evt-9")
    assert match_trigger(BROWSE, view, 7, context, Held()) == Start(BROWSE, "contact:7:evt-9")
    running = Held({("browse", "contact:7:evt-1"): Enrollment("contact:7:evt-1")})
    assert match_trigger(BROWSE, view, 7, context, running) is None
    recent = Held(starts={("browse", 7): T0 - timedelta(days=6)})
    assert match_trigger(BROWSE, view, 7, context, recent) is None
    old = Held(starts={("browse", 7): T0 - timedelta(days=8)})
    assert isinstance(match_trigger(BROWSE, view, 7, context, old), Start)


def test_subscription_keys_carry_the_renewal_date() -> None:
    event = Event(type="subscription.upserted", cart_id=None, subscription_id="sub_1")
    assert enrollment_key(RENEWAL, event, 7) == "sub_1"
    dated = replace(event, renews_at=datetime(2026, 12, 1, 23, 30, tzinfo=UTC))
    assert enrollment_key(RENEWAL, dated, 7) == "sub_1@2026-12-01"


def test_an_exit_by_subscription_ends_every_period_and_no_other_subscription() -> None:
    periods = {
        ("renewal", key): Enrollment(key)
        for key in ("sub_1@2026-12-01", "sub_1@2027-01-01", "sub_10@2026-12-01")
    }
    cancel = Event(type="subscription.cancelled", cart_id=None, subscription_id="sub_1")
    rule = ExitRule("subscription.cancelled")
    outcome = match_exit(RENEWAL, rule, cancel, 7, dict, Held(periods))
    assert isinstance(outcome, Exit)
    assert sorted(e.key for e in outcome.enrollments) == ["sub_1@2026-12-01", "sub_1@2027-01-01"]
    assert outcome.reason == "subscription.cancelled (same subscription_id)"


def test_an_order_exits_only_carts_begun_before_it() -> None:
    older = Enrollment("cart-old", started_at=T0 - timedelta(hours=2))
    newer = Enrollment("cart-new", started_at=T0 + timedelta(hours=1))
    held = Held({("abandoned_cart", "cart-old"): older, ("abandoned_cart", "cart-new"): newer})
    order = Event(type="order.placed", cart_id=None)
    by_contact, by_key = ExitRule("order.placed", "contact"), ExitRule("order.placed", "key")
    outcome = match_exit(CART, by_contact, order, 7, dict, held)
    assert outcome == Exit(CART, (older,), "order.placed (contact)")
    assert match_exit(CART, by_key, order, 7, dict, held) is None  # the order names no cart
    assert match_exit(CART, by_contact, order, 8, dict, held) is None  # someone else's order


def test_an_exit_condition_ends_only_what_it_holds_for() -> None:
    """``exit: [{event: order.placed, match: contact, condition: ...}]`` was parsed and then
    ignored: every order ended the reminders, whatever the condition said."""
    started = Enrollment("cart-1", started_at=T0 - timedelta(hours=2))
    held = Held({("abandoned_cart", "cart-1"): started})
    rule = ExitRule("order.placed", "contact", condition="event.total >= 50")
    order = Event(type="order.placed", cart_id=None)
    small: dict[str, Any] = {"event": {"total": 10}}
    large: dict[str, Any] = {"event": {"total": 80}}
    assert match_exit(CART, rule, order, 7, lambda: small, held) is None
    assert match_exit(CART, rule, order, 7, lambda: large, held) == Exit(
        CART, (started,), "order.placed (contact)"
    )


def test_a_failing_exit_condition_is_reported_and_ends_nothing() -> None:
    started = Enrollment("cart-1", started_at=T0 - timedelta(hours=2))
    held = Held({("abandoned_cart", "cart-1"): started})
    rule = ExitRule("order.placed", "contact", condition="event.total >= 50")
    outcome = match_exit(CART, rule, Event(type="order.placed"), 7, lambda: {"event": {}}, held)
    assert isinstance(outcome, ConditionFailed) and outcome.workflow is CART


def test_the_exit_context_is_not_built_when_nothing_would_end() -> None:
    def never() -> Mapping[str, Any]:
        raise AssertionError("context built for nothing")

    rule = ExitRule("order.placed", "contact", condition="event.total >= 50")
    assert match_exit(CART, rule, Event(type="order.placed"), 7, never, Held({})) is None


@dataclass
class PriceDrop:
    drop_percent: Decimal
    type: str = "product.price_dropped"
    occurred_at: datetime = T0
    event_id: str = "drop-1"


def test_a_price_drop_starts_only_a_workflow_whose_minimum_it_reaches() -> None:
    drops = Workflow(
        id="price_drop",
        name="Price drop",
        version="v1",
        trigger=Trigger(events=("product.price_dropped",), key="contact"),
        steps=(Step("cheaper", timedelta(0), "t"),),
    )
    big_only = replace(drops, trigger=replace(drops.trigger, min_drop_percent=Decimal(25)))
    key = "contact:7:drop-1"
    assert match_trigger(drops, PriceDrop(Decimal(9)), 7, context, Held()) is None  # default 10
    assert match_trigger(drops, PriceDrop(Decimal(10)), 7, context, Held()) == Start(drops, key)
    assert match_trigger(big_only, PriceDrop(Decimal(24)), 7, context, Held()) is None
    assert match_trigger(big_only, PriceDrop(Decimal(25)), 7, context, Held()) == Start(
        big_only, key
    )
