"""Suppress an address and skip what is still pending for its contact: one rule for every way
a suppression arrives (an unsubscribe for everything, a complaint or bounce from an ESP's
webhook, a hard bounce the provider gave at send time)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from remarket_mailer.db import consent as consent_db
from remarket_mailer.db import deliveries as deliveries_db
from remarket_mailer.db.session import Session

SKIP_REASON = "suppressed"
"""The reason a suppressed contact's pending deliveries are skipped with (the suppression's
own reason goes in their detail)."""


@dataclass(frozen=True, slots=True)
class Suppressed:
    newly: bool
    """False when the address already was suppressed (its first reason is kept)."""
    skipped: int
    """Pending (scheduled or queued) deliveries of the contact now skipped."""


def suppress_contact(
    session: Session,
    email: str | None,
    contact_id: int | None,
    reason: str,
    detail: str | None,
    now: datetime,
) -> Suppressed:
    """Put ``email`` on the suppression list for ``reason`` (``detail`` kept beside it) and skip
    the pending deliveries of ``contact_id``, in the caller's transaction. Either may be None:
    an address with no contact is still suppressed, a contact without an address still has its
    pending emails skipped. Deliveries already being sent finish as they are."""
    newly = consent_db.suppress(session, email, reason, detail, now) if email else False
    skipped = 0
    if contact_id is not None:
        skipped = deliveries_db.skip_pending_for_contact(
            session, contact_id, SKIP_REASON, reason, now
        )
    return Suppressed(newly, skipped)
