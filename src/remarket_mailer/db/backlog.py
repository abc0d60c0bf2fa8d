"""The backlog: deliveries due and not sent yet, counted by status (the scheduler's gauge)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from remarket_mailer.db.models import Delivery
from remarket_mailer.domain.states import DeliveryStatus


def due_backlog(session: Session, now: datetime) -> dict[str, int]:
    """``{status: count}`` of deliveries due by ``now`` and still scheduled, plus every one
    queued or sending (claimed, not finished). Statuses with none are left out. Reads the
    ``(status, due_at)`` index the sweeper uses."""
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(
            or_(
                and_(Delivery.status == DeliveryStatus.SCHEDULED, Delivery.due_at <= now),
                Delivery.status.in_((DeliveryStatus.QUEUED, DeliveryStatus.SENDING)),
            )
        )
        .group_by(Delivery.status)
    )
    return {str(status): int(count) for status, count in rows.all()}
