"""Template filters: money, numbers, plurals and discount labels per contact locale (Babel),
and the locale lookups every filter shares; dates are in ``dates.py``, links in ``utm.py``.

Every filter is a pure function. The send-time environments bind them to the language the
email is rendered in, so ``{{ cart.total | money(cart.currency) }}`` formats in the contact's
language even without an explicit locale argument.

Babel is exact but slow per call (``format_currency`` about 15 µs, ``format_datetime`` about
14 µs), and one email formats a dozen values. So: ``Locale`` objects are parsed once per name,
currency amounts go through a formatter built once per (locale, currency) that is checked
against Babel before it is trusted (datetimes likewise, in ``dates.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.numbers import (
    format_currency,
    format_decimal,
    format_percent,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
)

DEFAULT_LOCALE = "en"
UTC = ZoneInfo("UTC")


@lru_cache(maxsize=512)
def locale_of(name: str | None) -> Locale:
    """The Babel ``Locale`` for a contact's ``nl-NL`` / ``nl_NL`` / ``nl``; English otherwise.

    Never raises: an unknown or malformed name means English.
    """
    if not name:
        return Locale.parse(DEFAULT_LOCALE)
    try:
        return Locale.parse(name.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse(DEFAULT_LOCALE)


def language_tag(locale: str) -> tuple[str, str]:
    """``pt_BR`` → (``pt-BR``, ``ltr``): the HTML lang attribute and the text direction."""
    rtl = locale_of(locale).character_order == "right-to-left"
    return locale.replace("_", "-"), "rtl" if rtl else "ltr"


def _decimal(amount: Any) -> Decimal | None:
    if isinstance(amount, Decimal):
        return amount
    try:
        return Decimal(str(amount))
    except (InvalidOperation, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class _CurrencyFormat:
    """``€ 1.234,50`` without Babel's generic pattern machinery: quantize, group, swap symbols."""

    prefix: str
    suffix: str
    digits: int
    quantum: Decimal
    separators: dict[int, str]

    def __call__(self, value: Decimal) -> str:
        rounded = value.quantize(self.quantum, rounding=ROUND_HALF_EVEN)
        body = f"{rounded:,.{self.digits}f}".translate(self.separators)
        return f"{self.prefix}{body}{self.suffix}"


# Amounts that exercise rounding, grouping and zero; a fast formatter must match Babel on all.
_PROBES = tuple(
    Decimal(v)
    for v in (
        "0",
        "0.005",
        "0.015",
        "1",
        "2.675",
        "12.5",
        "999.995",
        "1234.5",
        "12345.678",
        "1234567.891",
        "1000000000.004",
    )
)


@lru_cache(maxsize=1024)
def currency_formatter(locale: str, currency: str) -> Callable[[Decimal], str]:
    """A function formatting non-negative Decimals in ``currency`` exactly as Babel would.

    Built once per (locale, currency). When the locale's pattern is anything but a plain
    prefix/grouping/suffix (Indian grouping, another numbering system), or the fast path
    disagrees with Babel on any probe, Babel itself is returned.
    """
    loc = locale_of(locale)

    def babel(value: Decimal) -> str:
        return str(format_currency(value, currency, locale=loc))

    try:
        pattern = loc.currency_formats["standard"]
        symbol = get_currency_symbol(currency, loc)
        digits = get_currency_precision(currency)
    except (KeyError, AttributeError):
        return babel
    if pattern.grouping != (3, 3) or pattern.scale != 0 or pattern.exp_prec:
        return babel
    fast = _CurrencyFormat(
        prefix=_currency_affix(pattern.prefix[0], currency, symbol),
        suffix=_currency_affix(pattern.suffix[0], currency, symbol),
        digits=digits,
        quantum=Decimal(1).scaleb(-digits),
        separators=str.maketrans({",": get_group_symbol(loc), ".": get_decimal_symbol(loc)}),
    )
    if any(fast(p) != babel(p) for p in _PROBES):
        return babel
    return fast


def _currency_affix(affix: str, currency: str, symbol: str) -> str:
    if "¤¤¤" in affix:
        return "\x00"  # a currency *name* depends on the amount: never matches, Babel is used
    return affix.replace("¤¤", currency.upper()).replace("¤", symbol)


@lru_cache(maxsize=1024)
def _money_formatter(locale: str | None, currency: str) -> Callable[[Decimal], str]:
    # Keyed by the contact's own spelling (nl-NL), so a send skips parsing it.
    return currency_formatter(str(locale_of(locale)), currency)


_MONEY_OF_TEXT: dict[tuple[str, str, str | None], str] = {}
"""(amount as text, currency, locale) → formatted: prices arrive as JSON strings, and making a
Decimal of one (and hashing it for ``_money``'s cache) cost more than the formatting."""


def money(amount: Any, currency: str, locale: str | None = None) -> str:
    """``money(42.5, 'EUR', 'nl')`` → ``€ 42,50``; a non-number comes back as it was."""
    if type(amount) is str:
        key = (amount, currency, locale)
        found = _MONEY_OF_TEXT.get(key)
        if found is None:
            found = _money_of(amount, currency, locale)
            if len(_MONEY_OF_TEXT) >= 8192:
                _MONEY_OF_TEXT.clear()
            _MONEY_OF_TEXT[key] = found
        return found
    return _money_of(amount, currency, locale)


def _money_of(amount: Any, currency: str, locale: str | None) -> str:
    value = _decimal(amount)
    if value is None or not value.is_finite():
        return str(amount)
    return _money(value, currency, locale)


@lru_cache(maxsize=8192)
def _money(value: Decimal, currency: str, locale: str | None) -> str:
    # Memoised: the HTML and the text part of an email show the same amounts, and a shop's
    # prices repeat from email to email.
    if value.is_signed():
        return str(format_currency(value, currency, locale=locale_of(locale)))
    return _money_formatter(locale, currency)(value)


def number(amount: Any, locale: str | None = None) -> str:
    """``number(1234.5, 'nl')`` → ``1.234,5``."""
    return str(format_decimal(Decimal(str(amount)), locale=locale_of(locale)))


def plural(
    count: Any,
    one: str,
    other: str,
    *,
    zero: str | None = None,
    two: str | None = None,
    few: str | None = None,
    many: str | None = None,
    locale: str | None = None,
) -> str:
    """The word form CLDR's plural rule of ``locale`` picks for ``count``.

    ``{{ n }} {{ n | plural('товар', 'товара', few='товара', many='товаров') }}`` gives
    ``1 товар``, ``3 товара``, ``5 товаров``, ``21 товар``. A form the template does not give
    falls back to ``other``. For translated sentences use ``{% trans %}…{% pluralize %}``.
    """
    category = locale_of(locale).plural_form(count)
    forms = {"zero": zero, "one": one, "two": two, "few": few, "many": many}
    chosen = forms.get(category)
    return chosen if chosen is not None else other


def discount_label(
    kind: str, value: Decimal, currency: str | None, locale: str | None = None
) -> str:
    """``10 %`` / ``€ 5,00`` as the contact's locale writes a percentage or an amount."""
    if kind == "percent":
        return str(format_percent(Decimal(value) / 100, locale=locale_of(locale)))
    return money(value, currency or "EUR", locale)
