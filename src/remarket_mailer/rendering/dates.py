"""The ``date`` and ``datetime`` filters: a moment in the contact's time zone, written as their
locale writes it (Babel's patterns).

Babel's ``format_datetime`` costs about 14 µs a call, so a formatter is built once per
(locale, format) from the CLDR pattern, checked against Babel on probe dates before it is
trusted, and results are memoised (the HTML and the text part of one email format the same
expiry date).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import (
    format_date,
    format_datetime,
    get_date_format,
    get_datetime_format,
    get_time_format,
    parse_pattern,
)

from remarket_mailer.rendering.filters import UTC, locale_of


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
