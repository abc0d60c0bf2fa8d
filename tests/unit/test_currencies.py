"""Money in two currencies is never added up: the main one is the one most orders are in, the
others are listed apart with their orders, and every order still counts as a conversion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from remarket_mailer.domain.attribution import (
    AttributionWindows,
    Order,
    Touch,
    attribute,
    conversion_within,
)
from remarket_mailer.domain.currencies import (
    CurrencyTotal,
    describe,
    in_currency,
    main_currency,
    merge,
    other_currencies,
)

T = datetime(2026, 11, 2, 9, tzinfo=UTC)


def test_the_main_currency_is_the_one_most_orders_are_in() -> None:
    assert main_currency(["USD", "EUR", "EUR", None, "GBP"]) == "EUR"
    assert main_currency(["USD", "GBP"]) == "GBP"  # a tie: alphabetical, stable between runs
    assert main_currency([None, ""], default="SEK") == "SEK"
    assert main_currency([]) == "EUR"


def test_other_currencies_are_listed_apart_with_their_orders() -> None:
    orders = [
        Order("o1", 1, T + timedelta(hours=1), Decimal("50.00"), "EUR"),
        Order("o2", 2, T + timedelta(hours=1), Decimal("30.00"), "USD", "X", Decimal("3.00")),
        Order("o3", 3, T + timedelta(hours=2), Decimal("12.50"), "USD"),
        Order("o4", 3, T + timedelta(hours=3), Decimal("40.00"), "GBP"),
    ]
    touches = [Touch(c, c, "wf", "s1", T, (), None, AttributionWindows()) for c in (1, 2, 3)]
    credited = attribute(orders, touches)
    assert len(credited) == 4  # every order converts, whatever its currency
    assert [c.order_id for c in in_currency(credited, "EUR")] == ["o1"]
    assert other_currencies(credited, "EUR") == (
        CurrencyTotal("GBP", 1, Decimal("40.00"), Decimal("0")),
        CurrencyTotal("USD", 2, Decimal("42.50"), Decimal("3.00")),
    )
    assert describe(other_currencies(credited, "EUR")) == (
        "GBP 40.00 from 1 order; USD 42.50 from 2 orders"
    )
    assert other_currencies(credited, "EUR")[1] in merge(other_currencies(credited, "EUR"))


def test_merge_adds_up_per_currency() -> None:
    a = CurrencyTotal("USD", 2, Decimal("42.50"), Decimal("3.00"))
    b = CurrencyTotal("USD", 1, Decimal("7.50"), Decimal("0"))
    c = CurrencyTotal("CHF", 1, Decimal("9.00"), Decimal("1.00"))
    assert merge([a, c, b]) == (c, CurrencyTotal("USD", 3, Decimal("50.00"), Decimal("3.00")))
    assert merge([]) == ()


def test_the_lift_window_counts_every_order_but_only_main_currency_revenue() -> None:
    orders = [
        Order("o1", 1, T + timedelta(hours=1), Decimal("50.00"), "EUR"),
        Order("o2", 1, T + timedelta(hours=2), Decimal("30.00"), "USD"),
    ]
    both = conversion_within(T, orders, timedelta(days=5), "EUR")
    assert (both.converted, both.orders, both.revenue) == (True, 2, Decimal("50.00"))
    dollars_only = conversion_within(T, orders[1:], timedelta(days=5), "EUR")
    assert (dollars_only.converted, dollars_only.revenue) == (True, Decimal("0"))
    assert conversion_within(T, orders, timedelta(days=5)).revenue == Decimal("80.00")
