"""Tracking events: what the ESPs (and our own tracked links) said about sent messages, each
recorded once; the one-time webhook tokens that make a signature usable once.

Takes :class:`~remarket_mailer.domain.tracking_events.TrackingEvent` values and builds the rows
itself: the id a redelivery is recognised by, and every value cut or dropped to what its
column holds (lengths read from the model, so a migration that widens a column widens this).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Insert, String, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from remarket_mailer.db.consent import email_hash
from remarket_mailer.db.deliveries import fail_sent_delivery
from remarket_mailer.db.models import Delivery as DeliveryRow
from remarket_mailer.db.models import TrackingEvent as TrackingEventRow
from remarket_mailer.db.models import WebhookToken
from remarket_mailer.db.sql import in_ids
from remarket_mailer.domain.tracking_events import TrackingEvent


def _column_length(name: str) -> int:
    column_type = TrackingEventRow.__table__.c[name].type
    if not isinstance(column_type, String) or column_type.length is None:
        raise TypeError(f"tracking_events.{name} is not a VARCHAR with a length")
    return column_type.length


RAW_ID_LENGTH: Final = _column_length("raw_id")
MESSAGE_ID_LENGTH: Final = _column_length("provider_message_id")
USER_AGENT_LENGTH: Final = _column_length("user_agent")
DETAIL_LENGTH: Final = 2000
"""``detail`` is TEXT: the ESP's reason or diagnostic, kept to what an operator reads."""
_MAX_DELIVERY_ID: Final = 2**63 - 1  # deliveries.id is a BIGINT
# Control characters, and lone surrogates (JSON "\ud800" parses, but no database encodes it).
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _insert_once(session: Session, model: type[Any], unique: list[str]) -> Insert:
    """An INSERT that skips rows whose ``unique`` columns are already there (both dialects)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model).on_conflict_do_nothing(index_elements=unique)
    return sqlite.insert(model).on_conflict_do_nothing(index_elements=unique)


def delivery_id_number(value: str | None) -> int | None:
    """Our delivery id in ``value`` as a number; None when ``value`` cannot be one of ours
    (not ASCII digits, such as ``"²"``, or beyond a BIGINT). Never raises."""
    if not value or not value.isascii() or not value.isdigit() or len(value) > 19:
        return None
    number = int(value)
    return number if number <= _MAX_DELIVERY_ID else None


def storable_id(value: str | None, length: int = RAW_ID_LENGTH) -> str | None:
    """``value`` when it fits an id column of ``length`` characters (and has no control
    characters or lone surrogates), else None: such an id cannot be one we stored, so it
    matches nothing."""
    if value is None or len(value) > length or _CONTROL.search(value):
        return None
    return value


def storable_detail(value: str | None) -> str | None:
    """``value`` without NUL characters (PostgreSQL text cannot hold them) and with lone
    surrogates (no database encodes them) as U+FFFD, cut to :data:`DETAIL_LENGTH` characters."""
    if not value:
        return None
    return _SURROGATE.sub("\ufffd", value.replace("\x00", ""))[:DETAIL_LENGTH] or None


def _storable(event: TrackingEvent) -> TrackingEvent:
    # Ids that cannot be ours (a delivery id "²", a message id of 300 characters) are dropped
    # from the event, which still counts: a bounce is about the address either way.
    ours = delivery_id_number(event.delivery_id) is not None
    return replace(
        event,
        provider_message_id=storable_id(event.provider_message_id, MESSAGE_ID_LENGTH),
        delivery_id=event.delivery_id if ours else None,
        detail=storable_detail(event.detail),
        user_agent=_user_agent(event.user_agent),
    )


def _user_agent(value: str | None) -> str | None:
    """Cut to the column; control characters (a forged header) dropped."""
    if not value:
        return None
    cleaned = "".join(ch for ch in value if ch.isprintable())
    return cleaned[:USER_AGENT_LENGTH] or None


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


def _row(event: TrackingEvent, received_at: datetime) -> dict[str, Any]:
    return {
        "provider": event.provider,
        "raw_id": _raw_id(event),
        "kind": event.kind,
        "email_hash": email_hash(event.email),
        "delivery_id": delivery_id_number(event.delivery_id),
        "provider_message_id": event.provider_message_id,
        "bounce_class": event.bounce_class,
        "detail": event.detail,
        "user_agent": event.user_agent,
        "occurred_at": event.occurred_at,
        "received_at": received_at,
    }


def record_tracking_events(
    session: Session, events: Sequence[TrackingEvent], received_at: datetime
) -> list[TrackingEvent]:
    """Insert ``events``; return the new ones (a redelivery, same provider and event id, is
    skipped), in order and as stored: ids that cannot be ours dropped, ``detail`` cleaned."""
    stored = [_storable(e) for e in events]
    if not stored:
        return []
    rows = [_row(e, received_at) for e in stored]
    statement = _insert_once(session, TrackingEventRow, ["provider", "raw_id"]).values(rows)
    fresh = set(session.execute(statement.returning(TrackingEventRow.raw_id)).scalars())
    return [e for e, row in zip(stored, rows, strict=True) if row["raw_id"] in fresh]


def fail_reported_delivery(session: Session, event: TrackingEvent, now: datetime) -> int | None:
    """The ESP says it never sent the message of ``event`` (kind ``failed``): its delivery,
    still ``sent``, becomes ``failed`` (``esp_failed``). Returns that delivery's id, or None
    when no sent row of this provider matched."""
    return fail_sent_delivery(
        session,
        delivery_id=delivery_id_number(event.delivery_id),
        provider=event.provider,
        provider_message_id=event.provider_message_id,
        detail=event.detail,
        now=now,
    )


def remember_webhook_token(
    session: Session, provider: str, token: str, now: datetime, keep_for: timedelta
) -> bool:
    """Record a one-time webhook token; False when it was already used within ``keep_for``.

    Tokens older than ``keep_for`` are deleted first: an index range on ``seen_at`` that
    holds a few minutes of webhooks, so the table never grows past that.
    """
    session.execute(delete(WebhookToken).where(WebhookToken.seen_at < now - keep_for))
    statement = _insert_once(session, WebhookToken, ["provider", "token"]).values(
        provider=provider, token=token, seen_at=now
    )
    return session.execute(statement.returning(WebhookToken.id)).scalar_one_or_none() is not None


def soft_bounce_count(session: Session, email: str, since: datetime) -> int:
    """How many soft bounces of ``email`` (any spelling) occurred at or after ``since``."""
    return int(
        session.scalar(
            select(func.count()).where(
                TrackingEventRow.email_hash == email_hash(email),
                TrackingEventRow.kind == "bounced",
                TrackingEventRow.bounce_class == "soft",
                TrackingEventRow.occurred_at >= since,
            )
        )
        or 0
    )


@dataclass(frozen=True, slots=True)
class SentEngagement:
    """A sent email of an enrollment and one open or click of it (both None: none yet)."""

    enrollment_id: int
    step_id: str
    delivery_id: int
    sent_at: datetime | None
    kind: str | None
    occurred_at: datetime | None
    user_agent: str | None


def engagement_of_enrollments(
    session: Session, enrollment_ids: Iterable[int]
) -> list[SentEngagement]:
    """The sent emails of these enrollments, each with its opens and clicks (one row per
    event, or one row without when it has none): what step conditions on engagement read,
    one query per send batch."""
    ids = set(enrollment_ids)
    if not ids:
        return []
    rows = session.execute(
        select(
            DeliveryRow.enrollment_id,
            DeliveryRow.step_id,
            DeliveryRow.id,
            DeliveryRow.sent_at,
            TrackingEventRow.kind,
            TrackingEventRow.occurred_at,
            TrackingEventRow.user_agent,
        )
        .outerjoin(
            TrackingEventRow,
            (TrackingEventRow.delivery_id == DeliveryRow.id)
            & TrackingEventRow.kind.in_(("opened", "clicked")),
        )
        .where(in_ids(session, DeliveryRow.enrollment_id, "enrollment_ids", ids))
        .where(DeliveryRow.status == "sent")
    )
    return [SentEngagement(*row) for row in rows]
