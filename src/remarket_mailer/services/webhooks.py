"""apply_tracking_events: ESP webhooks feed one suppression list, whichever ESP sent them.

hard bounce → suppressed at once; complaint → suppressed; unsubscribe → suppressed;
soft bounces → suppressed after 3 in 30 days (our threshold, not a standard); policy bounces
(5.7.x: a sender problem) → recorded for the operator, the address is not suppressed;
failed (the ESP accepted the message, then never sent it) → the delivery becomes ``failed``
(``esp_failed``), no one is suppressed.
A redelivered webhook (same ESP event id) changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from remarket_mailer import metrics
from remarket_mailer.db import contacts as contacts_db
from remarket_mailer.db import deliveries as deliveries_db
from remarket_mailer.db import tracking as tracking_db
from remarket_mailer.db.session import Session
from remarket_mailer.domain.clock import Clock
from remarket_mailer.domain.emails import normalize_email
from remarket_mailer.services.suppression import suppress_contact
from remarket_mailer.services.unit_of_work import UnitOfWork
from remarket_mailer.tracking.events import OneTimeToken, TrackingEvent, WebhookReplayError

log = logging.getLogger(__name__)

SOFT_BOUNCE_LIMIT = 3
SOFT_BOUNCE_WINDOW = timedelta(days=30)
_SUPPRESSING = {"complained": "complaint", "unsubscribed": "unsubscribed"}


@dataclass
class WebhookReport:
    received: int = 0
    new: int = 0
    suppressed: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


def apply_tracking_events(
    uow: UnitOfWork,
    clock: Clock,
    events: Sequence[TrackingEvent],
    once: OneTimeToken | None = None,
) -> WebhookReport:
    """Record ``events`` and apply their suppressions, in one transaction.

    With ``once``, the token is recorded in the same transaction; raises WebhookReplayError
    (code ``replayed``), applying nothing, when it was used before. A request that fails later
    leaves the token unused, so the ESP's retry still goes through.
    """
    report = WebhookReport(received=len(events))
    now = clock.now()
    with uow() as session:
        if once is not None and not tracking_db.remember_webhook_token(
            session, once.provider, once.token, now, once.keep_for
        ):
            raise WebhookReplayError(
                f"{once.provider}: this signature was already used; a replay is not applied",
                code="replayed",
            )
        new_events = tracking_db.record_tracking_events(session, events, now)
        report.new = len(new_events)
        contacts = contacts_db.contacts_by_email(session, (e.email for e in new_events))
        for event in new_events:
            report.kinds[event.kind] = report.kinds.get(event.kind, 0) + 1
            metrics.TRACKING.labels(event.kind).inc()
            if event.kind == "failed":
                _fail_delivery(session, event, now)
                continue
            reason = _suppression_reason(session, event, now)
            if reason is None:
                continue
            contact = contacts.get(normalize_email(event.email))
            contact_id = None if contact is None else contact.id
            if suppress_contact(session, event.email, contact_id, reason, event.detail, now).newly:
                report.suppressed += 1
    if report.suppressed:
        log.info("webhook suppressed=%d new=%d", report.suppressed, report.new)
    return report


def _fail_delivery(session: Session, event: TrackingEvent, now: datetime) -> None:
    failed = tracking_db.fail_reported_delivery(session, event, now)
    if failed is not None:  # counted as remarket_tracking_events_total{kind="failed"}
        log.warning(
            "provider=%s delivery_id=%s was never sent (%s): marked failed",
            event.provider,
            failed,
            event.detail or "no reason given",
        )


def _suppression_reason(session: Session, event: TrackingEvent, now: datetime) -> str | None:
    if event.kind in _SUPPRESSING:
        return _SUPPRESSING[event.kind]
    if event.kind != "bounced":
        return None
    if event.bounce_class == "hard":
        return "hard_bounce"
    if event.bounce_class == "soft":
        count = tracking_db.soft_bounce_count(session, event.email, now - SOFT_BOUNCE_WINDOW)
        return "soft_bounce_repeated" if count >= SOFT_BOUNCE_LIMIT else None
    return None  # policy: the sender's problem, not the address's


def record_engagement(
    uow: UnitOfWork,
    clock: Clock,
    delivery_id: int,
    kind: Literal["clicked", "opened"],
    detail: str | None = None,
    user_agent: str | None = None,
) -> bool:
    """Record a click or open of one of our own tracked links; False for an unknown delivery.
    ``user_agent`` is the request's, kept to tell people from machines in reports.

    The first click per (delivery, link, client) and the first open per (delivery, client)
    are kept: unique engagement, and a scanner's hit never hides a person's.
    """
    now = clock.now()
    with uow() as session:
        email = deliveries_db.delivery_email(session, delivery_id)
        if email is None:
            return False
        # One event per link and client: a person's click after a link scanner's (same link,
        # another user agent) is kept; the same client clicking again is not counted twice.
        basis = f"{detail or ''}\n{user_agent or ''}"
        suffix = hashlib.sha256(basis.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        event = TrackingEvent(
            kind=kind,
            email=email,
            provider="remarket",
            provider_message_id=None,
            delivery_id=str(delivery_id),
            occurred_at=now,
            detail=detail,
            raw_id=f"{kind}:{delivery_id}:{suffix}",
            user_agent=user_agent,
        )
        tracking_db.record_tracking_events(session, [event], now)
    return True
