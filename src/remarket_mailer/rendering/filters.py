"""Template filters: money, dates, plurals and links, per contact locale and time zone (Babel).

Every filter is a pure function. The send-time environments bind them to the language the
email is rendered in, so ``{{ cart.total | money(cart.currency) }}`` formats in the contact's
language even without an explicit locale argument.

Babel is exact but slow per call (``format_currency`` about 15 µs, ``format_datetime`` about
14 µs), and one email formats a dozen values. So: ``Locale`` objects are parsed once per name,
currency amounts go through a formatter built once per (locale, currency) that is checked
against Babel before it is trusted, and datetimes are memoised (the HTML and the text part of
one email format the same expiry date).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import (
    format_date,
    format_datetime,
    get_date_format,
    get_datetime_format,
    get_time_format,
    parse_pattern,
)
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


@lru_cache(maxsize=256)
def zone(name: str | None) -> ZoneInfo:
    """The contact's time zone; UTC when none is known or the name is not a real zone."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return UTC


def _in_zone(moment: datetime | str, timezone: str | None) -> datetime:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(zone(timezone))


@lru_cache(maxsize=4096)
def _format_date(moment: datetime, locale: str | None, timezone: str | None, fmt: str) -> str:
    return date_formatter(str(locale_of(locale)), fmt, False)(_in_zone(moment, timezone))


@lru_cache(maxsize=4096)
def _format_datetime(moment: datetime, locale: str | None, timezone: str | None, fmt: str) -> str:
    return date_formatter(str(locale_of(locale)), fmt, True)(_in_zone(moment, timezone))


# CLDR pattern fields a fast formatter writes itself; any other field means Babel does it all.
_DATE_FIELDS: dict[str, Callable[[datetime, Locale], str]] = {
    "d": lambda v, _: str(v.day),
    "dd": lambda v, _: f"{v.day:02d}",
    "M": lambda v, _: str(v.month),
    "MM": lambda v, _: f"{v.month:02d}",
    "MMM": lambda v, loc: str(loc.months["format"]["abbreviated"][v.month]),
    "MMMM": lambda v, loc: str(loc.months["format"]["wide"][v.month]),
    "LLL": lambda v, loc: str(loc.months["stand-alone"]["abbreviated"][v.month]),
    "LLLL": lambda v, loc: str(loc.months["stand-alone"]["wide"][v.month]),
    "y": lambda v, _: str(v.year),
    "yy": lambda v, _: f"{v.year % 100:02d}",
    "yyyy": lambda v, _: f"{v.year:04d}",
    "EEE": lambda v, loc: str(loc.days["format"]["abbreviated"][v.weekday()]),
    "EEEE": lambda v, loc: str(loc.days["format"]["wide"][v.weekday()]),
    "H": lambda v, _: str(v.hour),
    "HH": lambda v, _: f"{v.hour:02d}",
    "h": lambda v, _: str(v.hour % 12 or 12),
    "hh": lambda v, _: f"{v.hour % 12 or 12:02d}",
    "m": lambda v, _: str(v.minute),
    "mm": lambda v, _: f"{v.minute:02d}",
    "ss": lambda v, _: f"{v.second:02d}",
    "a": lambda v, loc: str(
        loc.day_periods["format"]["abbreviated"]["pm" if v.hour >= 12 else "am"]
    ),
}
_FIELD_KEY = re.compile(r"%\((\w+)\)s")
_DATE_PROBES = tuple(
    datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    for year, month, day, hour, minute, second in (
        (2026, 1, 1, 0, 0, 0),
        (2026, 2, 9, 1, 5, 9),
        (2009, 3, 10, 11, 59, 59),
        (2026, 4, 15, 12, 0, 1),
        (2026, 5, 20, 13, 30, 30),
        (2031, 6, 22, 23, 1, 2),
        (2026, 7, 31, 9, 9, 9),
        (2026, 8, 2, 10, 10, 10),
        (2026, 9, 3, 17, 45, 0),
        (2026, 10, 4, 18, 0, 0),
        (2026, 11, 9, 21, 15, 0),
        (2026, 12, 26, 22, 22, 22),
    )
)


def _pattern_formatter(pattern: str, loc: Locale) -> Callable[[datetime], str] | None:
    template = str(parse_pattern(pattern).format)  # "%(dd)s-%(MM)s-%(y)s"
    keys = _FIELD_KEY.findall(template)
    if not all(key in _DATE_FIELDS for key in keys):
        return None
    fields = [(key, _DATE_FIELDS[key]) for key in keys]

    def fast(value: datetime) -> str:
        return template % {key: field(value, loc) for key, field in fields}

    return fast


@lru_cache(maxsize=512)
def date_formatter(locale: str, fmt: str, with_time: bool) -> Callable[[datetime], str]:
    """A function formatting a local datetime as Babel's ``format_date`` (or, ``with_time``,
    ``format_datetime``) would in ``locale`` and ``fmt`` (``short``…``full`` or a pattern).

    Built once per (locale, format). Fields the fast path does not know (time zone names,
    week numbers…), or any disagreement with Babel on the probe dates, and Babel it is.
    """
    loc = locale_of(locale)

    def babel(value: datetime) -> str:
        if with_time:
            return str(format_datetime(value, fmt, tzinfo=value.tzinfo, locale=loc))
        return str(format_date(value, fmt, locale=loc))

    named = fmt in ("short", "medium", "long", "full")
    try:
        if named:
            width = cast(Literal["full", "long", "medium", "short"], fmt)
            date_part = _pattern_formatter(get_date_format(width, loc).pattern, loc)
            time_part = _pattern_formatter(get_time_format(width, loc).pattern, loc)
            joined = str(get_datetime_format(width, loc)).replace("'", "")
        else:
            date_part = time_part = _pattern_formatter(fmt, loc)
            joined = ""
    except (KeyError, ValueError, TypeError, AttributeError):
        return babel
    if date_part is None or (with_time and time_part is None):
        return babel

    def fast(value: datetime) -> str:
        if not named:
            return date_part(value)
        if not with_time:
            return date_part(value)
        assert time_part is not None
        return joined.replace("{0}", time_part(value)).replace("{1}", date_part(value))

    try:
        agrees = all(fast(p) == babel(p) for p in _DATE_PROBES)
    except (AttributeError, KeyError, ValueError, TypeError):  # e.g. a time pattern for a date
        agrees = False
    return fast if agrees else babel


def date(
    moment: datetime | str,
    locale: str | None = None,
    timezone: str | None = None,
    format: str = "medium",
) -> str:
    """The date of ``moment`` in the contact's time zone, written as their locale does.

    Raises ValueError for a string that is not ISO 8601, TypeError for anything else.
    """
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return _format_date(moment, locale, timezone, format)


def datetime_(
    moment: datetime | str,
    locale: str | None = None,
    timezone: str | None = None,
    format: str = "medium",
) -> str:
    """Date and time of ``moment`` in the contact's time zone, written as their locale does.

    Raises ValueError for a string that is not ISO 8601, TypeError for anything else.
    """
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return _format_datetime(moment, locale, timezone, format)


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


# Absolute, without query, fragment or whitespace: the utm query can simply be appended.
_PLAIN_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s][^?#\s]*")


@lru_cache(maxsize=1024)
def _utm_query(source: str, campaign: str, content: str) -> str:
    query = {"utm_source": source, "utm_medium": "email", "utm_campaign": campaign}
    if content:
        query["utm_content"] = content
    return urlencode(query)


def with_utm(
    url: str,
    campaign: str,
    content: str = "",
    source: str = "remarket",
    base: str | None = None,
) -> str:
    """Add utm_source/utm_medium/utm_campaign/utm_content unless the link already has them.

    A relative link (``/products/mug``) is made absolute against ``base`` (the shop's URL).
    Raises ValueError for a relative link when there is no base to resolve it against.
    """
    if _PLAIN_URL.fullmatch(url):
        # Most links (a cart's checkout URL) have no query yet: nothing to parse or merge.
        return f"{url}?{_utm_query(source, campaign, content)}"
    return _with_utm_parsed(url, campaign, content, source, base)


@lru_cache(maxsize=4096)
def _with_utm_parsed(url: str, campaign: str, content: str, source: str, base: str | None) -> str:
    parts = urlsplit(url)
    if not (parts.scheme and parts.netloc):
        if not base:
            raise ValueError(f"relative link {url!r} needs shop.url to become absolute")
        parts = urlsplit(urljoin(base, url))
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("utm_source", source)
    query.setdefault("utm_medium", "email")
    query.setdefault("utm_campaign", campaign)
    if content:
        query.setdefault("utm_content", content)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _field(context: Mapping[str, Any] | Any, section: str, key: str) -> str | None:
    value = context.get(section)
    if isinstance(value, Mapping):
        found = value.get(key)
        return str(found) if found else None
    return None


def utm_from_context(
    context: Mapping[str, Any] | Any,
    url: str,
    campaign: str | None = None,
    content: str | None = None,
) -> str:
    """``with_utm`` with campaign/content defaulting to workflow.id/step.id and base shop.url.

    ``context`` is the template's (a Jinja Context or a mapping: anything with ``.get``).
    Raises ValueError for a relative link when the context has no shop.url.
    """
    return with_utm(
        str(url),
        campaign or _field(context, "workflow", "id") or "remarket",
        content if content is not None else (_field(context, "step", "id") or ""),
        base=_field(context, "shop", "url"),
    )


def discount_label(
    kind: str, value: Decimal, currency: str | None, locale: str | None = None
) -> str:
    """``10 %`` / ``€ 5,00`` as the contact's locale writes a percentage or an amount."""
    if kind == "percent":
        return str(format_percent(Decimal(value) / 100, locale=locale_of(locale)))
    return money(value, currency or "EUR", locale)
