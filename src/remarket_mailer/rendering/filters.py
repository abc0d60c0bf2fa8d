"""Template filters: money, dates and links formatted per contact locale and time zone (Babel)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal

DEFAULT_LOCALE = "en"


def babel_locale(name: str | None) -> str:
    """A locale Babel knows, from a contact's ``nl-NL``/``nl_NL``/``nl``; English otherwise."""
    if not name:
        return DEFAULT_LOCALE
    try:
        return str(Locale.parse(name.replace("-", "_")))
    except (UnknownLocaleError, ValueError):
        return DEFAULT_LOCALE


def money(amount: Any, currency: str, locale: str | None = None) -> str:
    """``money(42.5, 'EUR', 'nl')`` → ``€ 42,50``."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    return format_currency(value, currency, locale=babel_locale(locale))


def number(amount: Any, locale: str | None = None) -> str:
    return format_decimal(Decimal(str(amount)), locale=babel_locale(locale))


def _in_zone(moment: datetime | str, timezone: str | None) -> datetime:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    try:
        zone = ZoneInfo(timezone) if timezone else ZoneInfo("UTC")
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    return moment.astimezone(zone)


def date(
    moment: datetime | str,
    locale: str | None = None,
    timezone: str | None = None,
    format: str = "medium",
) -> str:
    return format_date(_in_zone(moment, timezone), format=format, locale=babel_locale(locale))


def datetime_(
    moment: datetime | str,
    locale: str | None = None,
    timezone: str | None = None,
    format: str = "medium",
) -> str:
    local = _in_zone(moment, timezone)
    return format_datetime(local, format=format, tzinfo=local.tzinfo, locale=babel_locale(locale))


def with_utm(url: str, campaign: str, content: str = "", source: str = "remarket") -> str:
    """Add utm_source/utm_medium/utm_campaign/utm_content unless the link already has them."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("utm_source", source)
    query.setdefault("utm_medium", "email")
    query.setdefault("utm_campaign", campaign)
    if content:
        query.setdefault("utm_content", content)
    return urlunsplit(parts._replace(query=urlencode(query)))


def discount_label(
    kind: str, value: Decimal, currency: str | None, locale: str | None = None
) -> str:
    """``10 %`` / ``€ 5,00`` as the contact's locale writes a percentage or an amount."""
    from babel.numbers import format_percent

    if kind == "percent":
        return format_percent(value / 100, locale=babel_locale(locale))
    return money(value, currency or "EUR", locale)
