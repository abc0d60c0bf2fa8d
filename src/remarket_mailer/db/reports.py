"""The read side: what the operator report, the demo and ``remarket report`` show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    func,
    or_,
    select,
)
from sqlalchemy.orm import Session

from remarket_mailer.db.models import (
    Contact,
    Delivery,
    DiscountCode,
    Enrollment,
    Suppression,
)
from remarket_mailer.domain.states import DeliveryStatus


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: int
    workflow_id: str
    step_id: str
    template: str
    contact_email: str | None
    contact_name: str | None
    status: str
    due_at: datetime
    sent_at: datetime | None
    subject: str | None
    discount_code: str | None
    reason: str | None
    detail: str | None


def delivery_report(session: Session, changed_since: datetime | None = None) -> list[DeliveryRow]:
    """Every delivery (or those changed at or after ``changed_since``) with its contact."""
    statement = select(Delivery, Contact.email, Contact.first_name).join(
        Contact, Contact.id == Delivery.contact_id
    )
    if changed_since is not None:
        statement = statement.where(Delivery.updated_at >= changed_since)
    rows = session.execute(
        statement.order_by(func.coalesce(Delivery.sent_at, Delivery.updated_at), Delivery.id)
    )
    return [
        DeliveryRow(
            id=d.id,
            workflow_id=d.workflow_id,
            step_id=d.step_id,
            template=d.template,
            contact_email=email,
            contact_name=name,
            status=d.status,
            due_at=d.due_at,
            sent_at=d.sent_at,
            subject=d.subject,
            discount_code=d.discount_code,
            reason=d.reason,
            detail=d.detail,
        )
        for d, email, name in rows
    ]


def report_counts(session: Session, since: datetime) -> list[tuple[str, str, str | None, int]]:
    """(workflow, status, reason, count) for deliveries touched since ``since``."""
    rows = session.execute(
        select(Delivery.workflow_id, Delivery.status, Delivery.reason, func.count())
        .where(Delivery.updated_at >= since)
        .group_by(Delivery.workflow_id, Delivery.status, Delivery.reason)
        .order_by(Delivery.workflow_id, Delivery.status)
    )
    return [(w, s, r, int(c)) for w, s, r, c in rows]


def recent_failures(session: Session, since: datetime, limit: int) -> list[tuple[Any, ...]]:
    rows = session.execute(
        select(
            Delivery.id, Delivery.workflow_id, Delivery.step_id, Delivery.reason, Delivery.detail
        )
        .where(Delivery.status == DeliveryStatus.FAILED, Delivery.updated_at >= since)
        .order_by(Delivery.updated_at.desc())
        .limit(limit)
    )
    return [tuple(row) for row in rows]


def pool_summary(session: Session, now: datetime) -> dict[str, dict[str, int]]:
    """pool → {status: count}, with 'available' counting only unexpired codes."""
    rows = session.execute(
        select(DiscountCode.pool, DiscountCode.status, func.count())
        .where(DiscountCode.pool.is_not(None))
        .where(
            or_(
                DiscountCode.status != "available",
                DiscountCode.expires_at.is_(None),
                DiscountCode.expires_at > now,
            )
        )
        .group_by(DiscountCode.pool, DiscountCode.status)
    )
    result: dict[str, dict[str, int]] = {}
    for pool, status, count in rows:
        result.setdefault(str(pool), {})[status] = int(count)
    return result


def suppression_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Suppression.reason, func.count()).group_by(Suppression.reason))
    return {reason: int(count) for reason, count in rows}


def enrollment_outcomes(session: Session, since: datetime) -> list[tuple[str, str, bool, int]]:
    """(workflow, status, held out?, count) for enrollments started since ``since``."""
    rows = session.execute(
        select(Enrollment.workflow_id, Enrollment.status, Enrollment.context, Enrollment.id).where(
            Enrollment.started_at >= since
        )
    )
    counts: dict[tuple[str, str, bool], int] = {}
    for workflow_id, status, context, _id in rows:
        key = (workflow_id, status, bool((context or {}).get("holdout")))
        counts[key] = counts.get(key, 0) + 1
    return [(w, s, h, c) for (w, s, h), c in sorted(counts.items())]
