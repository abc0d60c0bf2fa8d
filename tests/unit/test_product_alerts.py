"""Back-in-stock and price-drop rules, without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from remarket_mailer.domain.product_alerts import (
    Interest,
    ProductState,
    alert_event_id,
    back_in_stock,
    derive_alerts,
    price_dropped,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WINDOW = timedelta(days=30)
NOW = T0 + timedelta(days=2)

SEEN_SOLD_OUT = Interest(7, "mug", T0, Decimal("20.00"), "EUR", available=False)
SEEN_IN_STOCK = Interest(7, "mug", T0, Decimal("20.00"), "EUR", available=True)
BACK = ProductState("mug", True, False, Decimal("20.00"), "EUR", T0 + timedelta(days=1), NOW)


def test_a_product_seen_sold_out_and_now_available_is_back_in_stock() -> None:
    alert = back_in_stock(SEEN_SOLD_OUT, BACK, NOW, WINDOW)
    assert alert is not None
    assert (alert.kind, alert.contact_id, alert.product_id) == ("back_in_stock", 7, "mug")
    assert alert.occurred_at == BACK.restocked_at


def test_seen_in_stock_then_sold_out_and_back_counts_too() -> None:
    assert back_in_stock(SEEN_IN_STOCK, BACK, NOW, WINDOW) is not None
    never_sold_out = replace(BACK, restocked_at=T0 - timedelta(days=3))
    assert back_in_stock(SEEN_IN_STOCK, never_sold_out, NOW, WINDOW) is None
    assert (
        back_in_stock(replace(SEEN_IN_STOCK, available=None), never_sold_out, NOW, WINDOW) is None
    )


def test_no_restock_alert_while_still_out_deleted_or_outside_the_window() -> None:
    assert back_in_stock(SEEN_SOLD_OUT, replace(BACK, available=False), NOW, WINDOW) is None
    assert back_in_stock(SEEN_SOLD_OUT, replace(BACK, deleted=True), NOW, WINDOW) is None
    late = NOW + timedelta(days=29)
    assert back_in_stock(SEEN_SOLD_OUT, BACK, late, WINDOW) is None
    assert back_in_stock(SEEN_SOLD_OUT, BACK, late, timedelta(days=40)) is not None


def test_a_restock_already_announced_is_not_announced_again_but_the_next_one_is() -> None:
    told = replace(SEEN_SOLD_OUT, restock_notified_at=BACK.restocked_at)
    assert back_in_stock(told, BACK, NOW, WINDOW) is None
    again = replace(BACK, restocked_at=NOW)
    second = back_in_stock(told, again, NOW, WINDOW)
    first = back_in_stock(SEEN_SOLD_OUT, BACK, NOW, WINDOW)
    assert second is not None and first is not None
    assert second.event_id != first.event_id


def test_the_same_change_always_gives_the_same_event_id() -> None:
    first = back_in_stock(SEEN_SOLD_OUT, BACK, NOW, WINDOW)
    again = back_in_stock(SEEN_SOLD_OUT, replace(BACK, updated_at=NOW + timedelta(1)), NOW, WINDOW)
    assert first is not None and again is not None
    assert first.event_id == again.event_id
    other = back_in_stock(replace(SEEN_SOLD_OUT, contact_id=8), BACK, NOW, WINDOW)
    assert other is not None and other.event_id != first.event_id
    assert len(first.event_id) <= 255


CHEAPER = ProductState("mug", True, False, Decimal("17.99"), "EUR", None, NOW)


def test_a_drop_of_at_least_the_percentage_in_the_same_currency_is_a_price_drop() -> None:
    alert = price_dropped(SEEN_IN_STOCK, CHEAPER, NOW, WINDOW, Decimal(10))
    assert alert is not None
    assert (alert.previous_price, alert.price, alert.currency) == (
        Decimal("20.00"),
        Decimal("17.99"),
        "EUR",
    )
    assert alert.drop_percent == Decimal(10)
    exactly = replace(CHEAPER, price=Decimal("18.00"))
    assert price_dropped(SEEN_IN_STOCK, exactly, NOW, WINDOW, Decimal(10)) is not None
    too_little = replace(CHEAPER, price=Decimal("18.01"))
    assert price_dropped(SEEN_IN_STOCK, too_little, NOW, WINDOW, Decimal(10)) is None
    assert price_dropped(SEEN_IN_STOCK, too_little, NOW, WINDOW, Decimal(5)) is not None


def test_no_price_drop_across_currencies_without_prices_or_for_a_deleted_product() -> None:
    assert price_dropped(SEEN_IN_STOCK, replace(CHEAPER, currency="USD"), NOW, WINDOW) is None
    assert price_dropped(SEEN_IN_STOCK, replace(CHEAPER, price=None), NOW, WINDOW) is None
    assert price_dropped(replace(SEEN_IN_STOCK, price=None), CHEAPER, NOW, WINDOW) is None
    assert price_dropped(SEEN_IN_STOCK, replace(CHEAPER, deleted=True), NOW, WINDOW) is None
    assert price_dropped(SEEN_IN_STOCK, replace(CHEAPER, available=False), NOW, WINDOW) is None
    old = replace(SEEN_IN_STOCK, seen_at=NOW - timedelta(days=31))
    assert price_dropped(old, CHEAPER, NOW, WINDOW) is None


def test_after_an_announced_drop_only_a_further_drop_is_news() -> None:
    told = replace(SEEN_IN_STOCK, drop_notified_price=Decimal("17.99"))
    assert price_dropped(told, CHEAPER, NOW, WINDOW) is None
    assert price_dropped(told, replace(CHEAPER, price=Decimal("18.50")), NOW, WINDOW) is None
    further = price_dropped(told, replace(CHEAPER, price=Decimal("15.00")), NOW, WINDOW)
    assert further is not None and further.previous_price == Decimal("17.99")


def test_derive_gives_one_alert_per_interest_restock_first() -> None:
    back_and_cheaper = replace(BACK, price=Decimal("10.00"))
    others = [
        replace(SEEN_IN_STOCK, contact_id=8, restock_notified_at=NOW),
        replace(SEEN_IN_STOCK, contact_id=9, product_id="unknown"),
    ]
    alerts = derive_alerts([SEEN_SOLD_OUT, *others], {"mug": back_and_cheaper}, NOW)
    assert [(a.contact_id, a.kind) for a in alerts] == [(7, "back_in_stock"), (8, "price_dropped")]
    assert derive_alerts([SEEN_SOLD_OUT, *others], {"mug": back_and_cheaper}, NOW,
                         drop_percent=None, restock=False) == []  # fmt: skip


@given(
    seen=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10_000), places=2),
    now_price=st.decimals(min_value=Decimal(0), max_value=Decimal(10_000), places=2),
    percent=st.integers(min_value=1, max_value=90),
)
def test_a_price_drop_alert_is_exactly_a_drop_of_the_percentage(
    seen: Decimal, now_price: Decimal, percent: int
) -> None:
    interest = replace(SEEN_IN_STOCK, price=seen)
    alert = price_dropped(
        interest, replace(CHEAPER, price=now_price), NOW, WINDOW, Decimal(percent)
    )
    assert (alert is not None) == (now_price <= seen * (100 - percent) / 100)
    if alert is not None:
        assert alert.drop_percent is not None and alert.drop_percent >= percent
        assert alert.event_id == alert_event_id("price_dropped", 7, "mug", f"price@EUR:{now_price}")
