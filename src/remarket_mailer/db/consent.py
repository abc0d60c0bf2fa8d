"""Consent: what a contact agreed to or withdrew, per topic, as the events said it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from remarket_mailer.db.models import Consent


def record_consent(
    session: Session,
    *,
    contact_id: int,
    topic: str,
    status: str,
    source: str | None,
    occurred_at: datetime,
    recorded_at: datetime,
    evidence: str | None = None,
) -> None:
    """Add one consent record to the transaction (the history is kept: the latest wins)."""
    session.add(
        Consent(
            contact_id=contact_id,
            topic=topic,
            status=status,
            source=source,
            evidence=evidence,
            occurred_at=occurred_at,
            recorded_at=recorded_at,
        )
    )
