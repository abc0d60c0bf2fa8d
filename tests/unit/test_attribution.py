"""Orders are credited to the last email that touched the contact, once; lift uses one window
from the (would-be) send for treated and holdout contacts alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from remarket_mailer.domain.attribution import (
    AttributionWindows,
    CreditBasis,
    Order,
    Touch,
    attribute,
    conversion_within,
)

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def order(at: timedelta, order_id: str = "o1", contact: int = 7, **extra: object) -> Order:
    return Order(order_id, contact, T0 + at, Decimal("80.00"), **extra)  # type: ignore[arg-type]


def touch(
    delivery: int, at: timedelta, engaged: tuple[timedelta, ...] = (), **extra: object
) -> Touch:
    return Touch(
        delivery,
        7,
        "abandoned_cart",
        f"reminder_{delivery}",
        T0 + at,
        tuple(T0 + e for e in engaged),
        **extra,  # type: ignore[arg-type]
    )


def test_an_order_the_day_after_receiving_is_credited_by_the_delivery_window() -> None:
    [conversion] = attribute([order(20 * HOUR)], [touch(1, timedelta(0))])
    assert (conversion.delivery_id, conversion.basis) == (1, CreditBasis.DELIVERY)
    assert conversion.revenue == Decimal("80.00") and conversion.touched_at == T0


def test_without_engagement_the_delivery_window_ends_after_one_day() -> None:
    assert attribute([order(25 * HOUR)], [touch(1, timedelta(0))]) == []


def test_a_click_extends_credit_to_five_days_after_it() -> None:
    clicked = touch(1, timedelta(0), engaged=(2 * HOUR,))
    [conversion] = attribute([order(2 * HOUR + 4 * DAY)], [clicked])
    assert conversion.basis is CreditBasis.ENGAGEMENT
    assert conversion.touched_at == T0 + 2 * HOUR
    assert attribute([order(2 * HOUR + 5 * DAY + HOUR)], [clicked]) == []


def test_the_last_touch_wins() -> None:
    """Reminder 1 was clicked on day 0, reminder 2 arrived on day 2: an order on day 2.5 goes
    to reminder 2 (its arrival is the later touch), one on day 3.5 back to reminder 1's click
    window (reminder 2's one-day window has closed)."""
    touches = [touch(1, timedelta(0), engaged=(HOUR,)), touch(2, 2 * DAY)]
    first, second = attribute(
        [order(2 * DAY + 12 * HOUR, "a"), order(3 * DAY + 12 * HOUR, "b")], touches
    )
    assert (first.order_id, first.delivery_id, first.basis) == ("a", 2, CreditBasis.DELIVERY)
    assert (second.order_id, second.delivery_id, second.basis) == ("b", 1, CreditBasis.ENGAGEMENT)


def test_an_order_is_credited_once() -> None:
    touches = [touch(1, timedelta(0), engaged=(HOUR,)), touch(2, 3 * HOUR)]
    replayed = [order(5 * HOUR), order(5 * HOUR), order(6 * HOUR)]
    conversions = attribute(replayed, touches)
    assert [(c.order_id, c.delivery_id) for c in conversions] == [("o1", 2)]


def test_orders_before_the_email_or_of_other_contacts_are_not_credited() -> None:
    touches = [touch(1, 5 * HOUR)]
    assert attribute([order(4 * HOUR), order(6 * HOUR, contact=8)], touches) == []


def test_the_code_redeemed_and_its_cost_stay_with_the_conversion() -> None:
    placed = order(HOUR, discount_code="CART-7KQ2", discount_amount=Decimal("8.00"))
    [conversion] = attribute([placed], [touch(1, timedelta(0), variant="b")])
    assert conversion.discount_code == "CART-7KQ2"
    assert conversion.discount_cost == Decimal("8.00")
    assert conversion.variant == "b" and conversion.workflow_id == "abandoned_cart"


def test_windows_are_per_workflow() -> None:
    short = AttributionWindows(after_engagement=timedelta(days=1), after_delivery=HOUR)
    clicked = touch(1, timedelta(0), engaged=(HOUR,), windows=short)
    assert attribute([order(2 * DAY)], [clicked]) == []
    assert len(attribute([order(DAY)], [clicked])) == 1
    with pytest.raises(ValueError, match="negative"):
        AttributionWindows(after_delivery=-HOUR)


def test_lift_window_is_the_same_from_the_would_be_send_for_both_groups() -> None:
    orders = [order(2 * DAY, "a"), order(3 * DAY, "b"), order(6 * DAY, "c"), order(-HOUR, "d")]
    window = AttributionWindows().lift_window
    assert window == 5 * DAY
    outcome = conversion_within(T0, orders, window)
    assert outcome.converted and outcome.orders == 2 and outcome.revenue == Decimal("160.00")
    nothing = conversion_within(T0 + 10 * DAY, orders, window)
    assert not nothing.converted and nothing.revenue == 0
    # An order id listed twice counts once.
    assert conversion_within(T0, [order(DAY), order(DAY)], window).orders == 1


def test_discount_taken_from_what_the_customer_paid() -> None:
    from remarket_mailer.domain.attribution import discount_taken

    # 10 % off a 100.00 cart: the customer paid 90.00, the code took 10.00.
    assert discount_taken("percent", Decimal("10"), Decimal("90.00")) == Decimal("10.00")
    assert discount_taken("percent", Decimal("15"), Decimal("85.00")) == Decimal("15.00")
    assert discount_taken("fixed", Decimal("5"), Decimal("40.00")) == Decimal("5.00")
    assert discount_taken("percent", Decimal("100"), Decimal("0")) == Decimal("0")
    assert discount_taken("free_shipping", Decimal("1"), Decimal("40.00")) == Decimal("0")
