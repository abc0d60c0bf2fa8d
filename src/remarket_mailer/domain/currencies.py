"""Money in several currencies: never added up across them.

A shop that sells in a second currency still converts people: those orders count as
conversions everywhere, but their revenue and discount cost stay in their own currency. The
report's money figures (revenue, revenue per email, discount cost, revenue lift) are in the
shop's main currency; the others are listed apart, each with its orders (docs/measuring.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from remarket_mailer.domain.attribution import Conversion

ZERO = Decimal("0")


@dataclass(frozen=True, slots=True)
class CurrencyTotal:
    """Credited orders in one currency other than the main one, and their money."""

    currency: str
    conversions: int
    revenue: Decimal
    discount_cost: Decimal


def main_currency(currencies: Iterable[str | None], default: str = "EUR") -> str:
    """The shop's main currency: the one most orders are in (a tie goes to the first in
    alphabetical order, so the report does not change between runs); ``default`` without
    any order that names one."""
    counted = Counter(c for c in currencies if c)
    if not counted:
        return default
    return min(counted, key=lambda c: (-counted[c], c))


def in_currency(conversions: Iterable[Conversion], currency: str) -> list[Conversion]:
    """The conversions whose money is in ``currency``."""
    return [c for c in conversions if c.currency == currency]


def other_currencies(conversions: Iterable[Conversion], main: str) -> tuple[CurrencyTotal, ...]:
    """Per currency other than ``main``: orders credited, revenue and discount cost, by
    currency code."""
    totals: dict[str, tuple[int, Decimal, Decimal]] = {}
    for c in conversions:
        if c.currency == main:
            continue
        n, revenue, cost = totals.get(c.currency, (0, ZERO, ZERO))
        totals[c.currency] = (n + 1, revenue + c.revenue, cost + c.discount_cost)
    return tuple(CurrencyTotal(cur, *totals[cur]) for cur in sorted(totals))


def merge(totals: Iterable[CurrencyTotal]) -> tuple[CurrencyTotal, ...]:
    """Several lists of ``CurrencyTotal`` added up per currency (a report's workflows)."""
    merged: dict[str, CurrencyTotal] = {}
    for t in totals:
        seen = merged.get(t.currency)
        merged[t.currency] = (
            t
            if seen is None
            else CurrencyTotal(
                t.currency,
                seen.conversions + t.conversions,
                seen.revenue + t.revenue,
                seen.discount_cost + t.discount_cost,
            )
        )
    return tuple(merged[c] for c in sorted(merged))


def describe(totals: Iterable[CurrencyTotal]) -> str:
    """``USD 150.00 from 2 orders; GBP 40.00 from 1 order`` (empty without any)."""
    return "; ".join(
        f"{t.currency} {t.revenue} from {t.conversions} order{'s' if t.conversions != 1 else ''}"
        for t in totals
    )
