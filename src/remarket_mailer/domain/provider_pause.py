"""Provider pauses: what an account or configuration fault does to a provider, as pure rules.

A provider that answers with a fault of the account or configuration (a refused key, an
unverified sender domain, a suspended account) would refuse every other message the same way,
so it is paused for every worker process: its messages are kept, and nothing is sent through
it until the pause ends. Then one batch probes it: a probe the provider accepts (anything but
another fault, or a timeout) ends the pause; another fault pauses it again, twice as long, up
to a cap. The state lives in the database, shared by all workers and hosts.

- :func:`pause_length`: 60 s for the first fault, doubling per consecutive fault up to 15 min,
  never shorter than the provider's own hint (a quota reset);
- :func:`gate`: may a request go out now, and is it the probe;
- :func:`after_fault`: the pause after a fault, and whether it starts a new one (one log line
  per pause, however many workers hit the fault at the same moment).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

FIRST_PAUSE = timedelta(seconds=60)
LONGEST_PAUSE = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class ProviderPause:
    """A provider's pause, as stored: ``faults`` consecutive probes refused (1 = the first)."""

    provider: str
    faults: int
    paused_until: datetime
    probing: bool
    """A probe batch is out (claimed until ``paused_until``); nothing else goes meanwhile."""
    reason: str
    detail: str


class Gate(enum.Enum):
    OPEN = "open"
    """No pause: send."""
    PROBE = "probe"
    """The pause is over or its probe is claimed: send, and the answer decides."""
    CLOSED = "closed"
    """Paused: hand the messages back until ``paused_until``, no attempt counted."""


def pause_length(
    faults: int,
    retry_after: float | None = None,
    *,
    first: timedelta = FIRST_PAUSE,
    longest: timedelta = LONGEST_PAUSE,
) -> timedelta:
    """How long the ``faults``-th consecutive fault pauses the provider: ``first`` doubled per
    fault after the first, at most ``longest``; at least ``retry_after`` seconds when given."""
    doubled: timedelta = first * (2 ** min(max(faults - 1, 0), 30))
    length = min(doubled, longest)
    if retry_after is not None and retry_after > 0:
        length = max(length, timedelta(seconds=retry_after))
    return length


def gate(pause: ProviderPause | None, now: datetime) -> Gate:
    """May a request go out through the provider now? A pause that is over (or a probe whose
    claim ran out, its worker gone) is probed; a claimed probe is the probe batch's."""
    if pause is None:
        return Gate.OPEN
    if pause.paused_until <= now or pause.probing:
        return Gate.PROBE
    return Gate.CLOSED


def after_fault(
    pause: ProviderPause | None,
    provider: str,
    now: datetime,
    reason: str,
    detail: str,
    retry_after: float | None = None,
    *,
    first: timedelta = FIRST_PAUSE,
    longest: timedelta = LONGEST_PAUSE,
) -> tuple[ProviderPause, bool]:
    """The pause after the provider answered a fault; True when this starts a pause (the
    first fault, or a probe refused), False when a pause already runs (another worker's
    request was out at the same time): that one is kept as it is, not doubled."""
    if pause is not None and pause.paused_until > now and not pause.probing:
        return pause, False
    faults = 1 if pause is None else pause.faults + 1
    until = now + pause_length(faults, retry_after, first=first, longest=longest)
    return ProviderPause(provider, faults, until, False, reason, detail[:2000]), True
