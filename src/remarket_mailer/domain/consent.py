"""Which consent record counts: an opt-out is never overtaken by what came before it.

Two clocks stamp a consent record: ``occurred_at``, when the client says it happened, and
``recorded_at``, when we received it. The client's clock can be wrong or hostile (a grant
stamped 2030 would outrank every unsubscribe until then), so:

- an event stamped more than :data:`FUTURE_TOLERANCE` ahead of its arrival is refused, and one
  stamped ahead within the tolerance counts as stamped when it arrived (:func:`event_time`);
- records are read in the order they arrived. A withdrawal always takes effect: it beats every
  grant that arrived before it, whatever their stamps. A grant takes effect only when it is
  stamped after every record that arrived before it, so a delayed grant from before an
  unsubscribe (a retried shop webhook) can never undo it (:func:`current_consent`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

FUTURE_TOLERANCE = timedelta(minutes=5)
"""How far ahead of our clock an event may be stamped (clock skew between hosts)."""

GRANTED = "granted"
WITHDRAWN = "withdrawn"


def event_time(
    occurred_at: datetime, received_at: datetime, tolerance: timedelta = FUTURE_TOLERANCE
) -> datetime:
    """``occurred_at`` as we count it: never later than ``received_at``.

    Raises ValueError when ``occurred_at`` is more than ``tolerance`` after ``received_at``.
    """
    if occurred_at - received_at > tolerance:
        raise ValueError(
            f"occurred_at {occurred_at.isoformat()} is more than "
            f"{int(tolerance.total_seconds() // 60)} minutes in the future"
        )
    return min(occurred_at, received_at)


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    status: str
    """'granted' or 'withdrawn'."""
    occurred_at: datetime
    recorded_at: datetime


def current_consent(records: Iterable[ConsentRecord]) -> str | None:
    """'granted', 'withdrawn' or None (no record) for one contact and topic, from its
    records in the order they arrived."""
    status: str | None = None
    newest: datetime | None = None
    for record in records:
        stamped = min(record.occurred_at, record.recorded_at)  # rows from before the clamp
        if record.status == WITHDRAWN:
            status = WITHDRAWN
        elif newest is None or stamped > newest or status != WITHDRAWN:
            status = GRANTED
        if newest is None or stamped > newest:
            newest = stamped
    return status
