"""Frequency caps: at most n emails per contact in any rolling window.

Read from settings (global and per category) and from a workflow's YAML; ``decide`` asks
``cap_release_time`` whether a delivery may go now or must wait for a send to leave a window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from remarket_mailer.domain.durations import format_duration, parse_duration


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    """At most ``limit`` emails per contact in any rolling ``window``."""

    limit: int
    window: timedelta

    def __str__(self) -> str:
        return f"{self.limit}/{format_duration(self.window)}"


def parse_caps(text: str) -> tuple[FrequencyCap, ...]:
    """``"1/16h, 3/7d"`` → two caps. Raises ValueError naming the bad part."""
    caps = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        limit, _, window = part.partition("/")
        if not limit.strip().isdigit() or int(limit) < 1 or not window:
            raise ValueError(
                f"invalid frequency cap {part!r}: write it as COUNT/DURATION, e.g. 3/7d"
            )
        caps.append(FrequencyCap(int(limit), parse_duration(window.strip())))
    return tuple(caps)


def cap_release_time(
    sends: tuple[datetime, ...] | list[datetime], caps: tuple[FrequencyCap, ...], now: datetime
) -> datetime | None:
    """None if every cap allows an email at ``now``; else the earliest moment all of them do.

    Rolling windows: a cap of n per W allows a send at t when fewer than n sends fall in
    (t - W, t]. Time only moves sends out of windows, so the latest per-cap release is the
    release for all caps.
    """
    release: datetime | None = None
    for cap in caps:
        recent = sorted(s for s in sends if now - cap.window < s <= now)
        if len(recent) >= cap.limit:
            # The oldest sends have to leave the window until only limit - 1 remain.
            until = recent[len(recent) - cap.limit] + cap.window
            if release is None or until > release:
                release = until
    return release
