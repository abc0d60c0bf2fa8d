"""Durations as marketers write them: ``30m``, ``1h``, ``24h``, ``7d``, ``2w``, ``1d12h``."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$")


def parse_duration(text: str) -> timedelta:
    """Parse ``"1d12h"`` into a timedelta.

    Raises ValueError naming the text when it is not a sequence of ``<number><unit>`` parts
    with units s, m, h, d, w.
    """
    if not isinstance(text, str) or not _WHOLE.match(text):
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit s, m, h, d or w, "
            "e.g. '24h' or '1d12h'"
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The shortest ``parse_duration`` text for ``delta`` (whole seconds)."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


def parse_moment(text: str, now: datetime, *, end_of_day: bool = False) -> datetime:
    """A report bound as people write it: a duration back from ``now`` (``7d``), a date
    (``2026-11-01``, UTC midnight; with ``end_of_day`` the midnight after it, so an "until"
    date includes its day) or an RFC 3339 time with an offset.

    Raises ValueError naming the text and the forms it accepts.
    """
    stripped = text.strip() if isinstance(text, str) else ""
    if stripped and _WHOLE.match(stripped):
        return now - parse_duration(stripped)
    try:
        day = date.fromisoformat(stripped)
    except ValueError:
        pass
    else:
        midnight = datetime.combine(day, time(0), tzinfo=UTC)
        return midnight + timedelta(days=1) if end_of_day else midnight
    try:
        moment = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError(
            f"{text!r} is not a date (2026-11-01), a time with an offset "
            "(2026-11-01T08:00:00Z) or a duration back from now (7d, 24h)"
        )
    return moment.astimezone(UTC)
