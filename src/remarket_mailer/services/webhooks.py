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
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from remarket_mailer import metrics
from remarket_mailer.db import consent as consent_db
from remarket_mailer.db import contacts as contacts_db
from remarket_mailer.db import deliveries as deliveries_db
from remarket_mailer.db import repository as repo
from remarket_mailer.delivery.providers.webhooks import (
    TrackingEvent,
    WebhookReplayError,
    delivery_id_number,
    storable_detail,
    storable_id,
)
from remarket_mailer.domain.clock import Clock
from remarket_mailer.domain.emails import normalize_email
from remarket_mailer.services.suppression import suppress_contact
from remarket_mailer.services.unit_of_work import UnitOfWork

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


def _raw_id(event: TrackingEvent) -> str:
    if event.raw_id:
        # An id too long (or too odd) for the column is kept as its hash: still unique.
        return (
            storable_id(event.raw_id)
            or "sha256:" + hashlib.sha256(event.raw_id.encode("utf-8", "surrogatepass")).hexdigest()
        )
    # No ESP event id: derive one from what identifies the event, so redeliveries collapse.
    basis = f"{event.kind}|{event.email}|{event.provider_message_id}|{event.occurred_at}"
    return "derived:" + hashlib.sha256(basis.encode("utf-8", "surrogatepass")).hexdigest()


def _storable(event: TrackingEvent) -> TrackingEvent:
    # Ids that cannot be ours (a delivery id "²", a message id of 300 characters) are dropped
    # from the event, which still counts: a bounce is about the address either way.
    ours = delivery_id_number(event.delivery_id) is not None
    return replace(
        event,
        provider_message_id=storable_id(event.provider_message_id),
        delivery_id=event.delivery_id if ours else None,
        detail=storable_detail(event.detail),
    )


@dataclass(frozen=True, slots=True)
class OneTimeToken:
    """A webhook signature's token that may be used once (Mailgun), and for how long to keep
    it: as long as the signature it came with can still verify."""

    provider: str
    token: str
    keep_for: timedelta


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
    events = [_storable(e) for e in events]
    report = WebhookReport(received=len(events))
    now = clock.now()
    with uow() as session:
        if once is not None and not repo.remember_webhook_token(
            session, once.provider, once.token, now, once.keep_for
        ):
            raise WebhookReplayError(
                f"{once.provider}: this signature was already used; a replay is not applied",
                code="replayed",
            )
        rows = [
            {
                "provider": e.provider,
                "raw_id": _raw_id(e),
                "kind": e.kind,
                "email_hash": consent_db.email_hash(e.email),
                "delivery_id": delivery_id_number(e.delivery_id),
                "provider_message_id": e.provider_message_id,
                "bounce_class": e.bounce_class,
                "detail": e.detail,
                "occurred_at": e.occurred_at,
                "received_at": now,
            }
            for e in events
        ]
        fresh = repo.record_tracking_events(session, rows)
        new_events = [e for e, row in zip(events, rows, strict=True) if row["raw_id"] in fresh]
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
    failed = deliveries_db.fail_sent_delivery(
        session,
        delivery_id=delivery_id_number(event.delivery_id),
        provider=event.provider,
        provider_message_id=event.provider_message_id,
        detail=event.detail,
        now=now,
    )
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
        count = repo.soft_bounce_count(
            session, consent_db.email_hash(event.email), now - SOFT_BOUNCE_WINDOW
        )
        return "soft_bounce_repeated" if count >= SOFT_BOUNCE_LIMIT else None
    return None  # policy: the sender's problem, not the address's


def record_engagement(
    uow: UnitOfWork, clock: Clock, delivery_id: int, kind: str, detail: str | None = None
) -> bool:
    """Record a click or open of one of our own tracked links; False for an unknown delivery.

    The first click per (delivery, link) and the first open per delivery are kept: unique
    engagement, which is what reports use (opens are inflated by Apple MPP anyway).
    """
    now = clock.now()
    with uow() as session:
        email = deliveries_db.delivery_email(session, delivery_id)
        if email is None:
            return False
        suffix = hashlib.sha256((detail or "").encode()).hexdigest()[:16]
        repo.record_tracking_events(
            session,
            [
                {
                    "provider": "remarket",
                    "raw_id": f"{kind}:{delivery_id}:{suffix}",
                    "kind": kind,
                    "email_hash": consent_db.email_hash(email),
                    "delivery_id": delivery_id,
                    "provider_message_id": None,
                    "bounce_class": None,
                    "detail": (detail or "")[:2000] or None,
                    "occurred_at": now,
                    "received_at": now,
                }
            ],
        )
    return True
