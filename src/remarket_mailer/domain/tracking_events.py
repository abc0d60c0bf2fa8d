"""The normalized tracking event: one thing that happened to one sent message, in our words
rather than the ESP's. The webhook parsers (``tracking/``) make them and ``db/tracking.py``
stores them; both take the value from here, so neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

EventKind = Literal[
    "delivered", "deferred", "bounced", "complained", "opened", "clicked", "unsubscribed", "failed"
]
"""``failed``: the ESP accepted the request, then never sent the message (Resend
``email.failed``: quota, key or domain problems). Nothing is known about the address."""
BounceClass = Literal["hard", "soft", "policy"]

EVENT_KINDS: Final[tuple[EventKind, ...]] = (
    "delivered",
    "deferred",
    "bounced",
    "complained",
    "opened",
    "clicked",
    "unsubscribed",
    "failed",
)


@dataclass(frozen=True, slots=True)
class TrackingEvent:
    """One thing that happened to one sent message, in our words rather than the ESP's."""

    kind: EventKind
    email: str
    """The recipient the event is about (lower-cased)."""
    provider: str
    """``postmark``, ``sendgrid``, ``mailgun``, ``resend`` or ``ses``."""
    provider_message_id: str | None
    """The id the ESP returned when it accepted the message (``Sent.provider_id``)."""
    delivery_id: str | None
    """Our delivery id, echoed back from the message's metadata/tags/custom args."""
    occurred_at: datetime
    """When it happened, timezone-aware."""
    bounce_class: BounceClass | None = None
    """For ``bounced``: hard (suppress now), soft (count it), policy (sender problem)."""
    detail: str | None = None
    """The ESP's reason or the SMTP diagnostic, for the operator; never shown to users."""
    raw_id: str | None = None
    """The ESP's id for this event: redeliveries of the same event carry the same one."""
    user_agent: str | None = None
    """For ``opened`` / ``clicked``: the client the ESP (or our pixel and redirect) saw, which
    tells a person from Apple's privacy proxy or a link scanner (``domain.engagement``)."""
