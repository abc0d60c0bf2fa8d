"""Tracking persistence (tracking events, webhook tokens, soft-bounce counts)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    delete,
    func,
    select,
)
from sqlalchemy.orm import Session

from remarket_mailer.db.models import TrackingEvent as TrackingEventRow
from remarket_mailer.db.models import (
    WebhookToken,
)
from remarket_mailer.db.sql import dialect_insert


def record_tracking_events(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert tracking events; returns the raw ids that were new (redeliveries are skipped)."""
    if not rows:
        return set()
    statement = dialect_insert(session, TrackingEventRow).values(list(rows))
    statement = statement.on_conflict_do_nothing(index_elements=["provider", "raw_id"])
    return set(session.execute(statement.returning(TrackingEventRow.raw_id)).scalars())


def remember_webhook_token(
    session: Session, provider: str, token: str, now: datetime, keep_for: timedelta
) -> bool:
    """Record a one-time webhook token; False when it was already used within ``keep_for``.

    Tokens older than ``keep_for`` are deleted first: an index range on ``seen_at`` that
    holds a few minutes of webhooks, so the table never grows past that.
    """
    session.execute(delete(WebhookToken).where(WebhookToken.seen_at < now - keep_for))
    statement = dialect_insert(session, WebhookToken).values(
        provider=provider, token=token, seen_at=now
    )
    statement = statement.on_conflict_do_nothing(index_elements=["provider", "token"])
    return session.execute(statement.returning(WebhookToken.id)).scalar_one_or_none() is not None


def soft_bounce_count(session: Session, digest: str, since: datetime) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                TrackingEventRow.email_hash == digest,
                TrackingEventRow.kind == "bounced",
                TrackingEventRow.bounce_class == "soft",
                TrackingEventRow.occurred_at >= since,
            )
        )
        or 0
    )
