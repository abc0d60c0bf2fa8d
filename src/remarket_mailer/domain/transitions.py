"""Delivery state changes as values: what the send path decided for one row, checked against
the state machine (``states.DELIVERY_TRANSITIONS``) when it is made. An illegal change is a bug
and raises ``IllegalTransition`` before anything is written.

Every change the worker makes starts from ``sending`` (the rows it took); ``change()`` is the
row the guarded UPDATE writes: only the columns it names change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from remarket_mailer.domain.states import DeliveryStatus, check_delivery_transition

DETAIL_LENGTH = 2000
"""A reason's detail (a provider's error text, a condition) is kept to this many characters."""

_ENDED = {"lease_expires_at": None, "send_key": None}
"""A row that ends, or is deferred out of its key's group, holds no lease and no key."""


@dataclass(frozen=True, slots=True)
class Transition:
    delivery_id: int
    from_: DeliveryStatus
    to: DeliveryStatus
    reason: str | None = None
    detail: str | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    """Other columns the change sets (due_at, sent_at, provider ids, lease, key)."""

    def __post_init__(self) -> None:
        check_delivery_transition(self.from_, self.to)

    def change(self) -> dict[str, Any]:
        """The row for the guarded UPDATE: ``id``, ``status`` and the columns it sets."""
        row: dict[str, Any] = {"id": self.delivery_id, "status": self.to}
        if self.reason is not None:
            row["reason"] = self.reason
        if self.detail is not None:
            row["detail"] = self.detail[:DETAIL_LENGTH]
        row.update(self.values)
        return row


SENDING = DeliveryStatus.SENDING


def skip(delivery_id: int, reason: str, detail: str) -> Transition:
    """The worker's checks said no (exited, suppressed, no consent, condition false, ...)."""
    return Transition(delivery_id, SENDING, DeliveryStatus.SKIPPED, str(reason), detail, _ENDED)


def fail(delivery_id: int, reason: str, detail: str) -> Transition:
    """A permanent error: the provider refused, the template or condition failed."""
    return Transition(delivery_id, SENDING, DeliveryStatus.FAILED, reason, detail, _ENDED)


def defer(delivery_id: int, until: datetime, why: str) -> Transition:
    """A cap or send window holds the email back until ``until``; it leaves its key's group
    (the group may go out without it under the key)."""
    detail = f"{why} until {until.isoformat()}"
    values = {"due_at": until, **_ENDED}
    return Transition(delivery_id, SENDING, DeliveryStatus.SCHEDULED, "deferred", detail, values)


def deferral_rule(detail: str | None) -> str:
    """The rule a ``defer`` detail names (``quiet_hours until …`` → ``quiet_hours``)."""
    return (detail or "").partition(" ")[0] or "unknown"


def retry(delivery_id: int, due_at: datetime, reason: str, detail: str) -> Transition:
    """Tried again at ``due_at`` (a transient error, a paused provider); its key stays."""
    values = {"due_at": due_at, "lease_expires_at": None}
    return Transition(delivery_id, SENDING, DeliveryStatus.SCHEDULED, reason, detail, values)


def sent(
    delivery_id: int,
    *,
    at: datetime,
    provider: str | None,
    provider_message_id: str | None,
    subject: str | None,
    discount_code: str | None,
    detail: str | None = None,
) -> Transition:
    """The provider accepted the message (``detail`` says so when its id is unknown)."""
    values = {
        "sent_at": at,
        "provider": provider,
        "provider_message_id": provider_message_id,
        "subject": subject,
        "discount_code": discount_code,
        **_ENDED,
    }
    return Transition(delivery_id, SENDING, DeliveryStatus.SENT, None, detail, values)


def renew_lease(delivery_id: int, until: datetime) -> Transition:
    """A slow batch keeps the rows it has still to send for another lease."""
    values = {"lease_expires_at": until}
    return Transition(delivery_id, SENDING, SENDING, values=values)
