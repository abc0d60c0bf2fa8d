"""Send windows: the local times between which a contact may be emailed (outside them are the
quiet hours), applied to wall-clock time in the contact's zone, DST-correct."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from remarket_mailer.domain.clock import zone_or_utc


@dataclass(frozen=True, slots=True)
class SendWindow:
    """Local times between which a contact may be emailed, e.g. 09:00-20:00.

    Outside it are the quiet hours."""

    start: time
    end: time


def next_allowed_time(now: datetime, timezone: str | None, window: SendWindow) -> datetime:
    """The first moment at or after ``now`` inside the local send window of ``timezone``.

    DST-correct: the window is applied to local wall-clock times; a window start that falls in
    a spring-forward gap moves to the first real minute after it. Unknown or missing time zones
    count as UTC.
    """
    zone = zone_or_utc(timezone)
    local = now.astimezone(zone)
    if _inside(local.time(), window.start, window.end):
        return now
    for days in range(3):
        day = (local + timedelta(days=days)).date()
        start = _localize(datetime.combine(day, window.start), zone)
        if start > now:
            return start.astimezone(now.tzinfo)
    raise AssertionError("a daily window always opens within two days")  # pragma: no cover


def _inside(moment: time, start: time, end: time) -> bool:
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end  # a window across midnight, e.g. 20:00-02:00


def _localize(naive: datetime, zone: ZoneInfo) -> datetime:
    aware = naive.replace(tzinfo=zone)
    # A wall time inside a DST gap does not exist; the UTC round trip moves it past the gap.
    roundtrip = aware.astimezone(ZoneInfo("UTC")).astimezone(zone)
    if roundtrip.replace(tzinfo=None) != naive:
        return roundtrip
    return aware
