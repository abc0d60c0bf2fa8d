"""The renewal scan's side of enrollments: subscriptions renewing soon that no enrollment
covers yet, read a keyset page at a time, and their enrollments and reminders written in
bulk (COPY on PostgreSQL, multi-row INSERT elsewhere).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    and_,
    func,
    select,
    text,
)
from sqlalchemy.orm import Session, aliased

from remarket_mailer.db.models import (
    Contact,
    Delivery,
    Enrollment,
    Subscription,
)
from remarket_mailer.db.sql import copy_text
from remarket_mailer.domain.enrollment import PlannedDelivery
from remarket_mailer.domain.keys import PERIOD_SEPARATOR
from remarket_mailer.domain.states import DeliveryStatus, EnrollmentStatus


@dataclass(frozen=True, slots=True)
class RenewalCandidate:
    subscription_id: str
    contact_id: int
    renews_at: datetime
    plan: str | None
    status: str | None
    price: Decimal | None
    currency: str | None
    timezone: str | None
    external_id: str | None
    email: str | None


def renewal_key(session: Session) -> Any:
    """SQL for a subscription's renewal enrollment key: ``<subscription_id>@<YYYY-MM-DD>``."""
    if session.get_bind().dialect.name == "postgresql":
        day = func.to_char(func.timezone("UTC", Subscription.renews_at), "YYYY-MM-DD")
    else:  # SQLite keeps UTC text, 'YYYY-MM-DD HH:MM:SS'
        day = func.substr(Subscription.renews_at, 1, 10)
    return Subscription.subscription_id + PERIOD_SEPARATOR + day


_ENROLLMENT_COLUMNS = (
    "id",
    "workflow_id",
    "workflow_version",
    "key",
    "contact_id",
    "status",
    "started_at",
    "context",
)
_DELIVERY_COLUMNS = (
    "enrollment_id",
    "contact_id",
    "workflow_id",
    "step_id",
    "variant",
    "template",
    "status",
    "due_at",
    "planned_at",
    "attempts",
    "created_at",
    "updated_at",
)


def renewal_page_end(session: Session, after: str, limit: int) -> str | None:
    """The last subscription id of the keyset page that starts after ``after``; None at the
    end. Index-only: the scan cuts its pages with it before filling them in parallel."""
    return session.scalar(
        select(func.max(Subscription.subscription_id)).where(
            Subscription.subscription_id.in_(
                select(Subscription.subscription_id)
                .where(Subscription.subscription_id > after)
                .order_by(Subscription.subscription_id)
                .limit(limit)
            )
        )
    )


def renewal_candidates(
    session: Session, workflow_id: str, after: str, last: str, start: datetime, end: datetime
) -> list[RenewalCandidate]:
    """Active subscriptions with ids in (after, last], renewing in [start, end) and not yet
    enrolled in ``workflow_id`` for that date.

    The anti-join probes the (workflow_id, key) unique index per subscription: no IN list of
    thousands of keys, whose plan degrades badly while the table grows under COPY.
    """
    enrolled = aliased(Enrollment)
    key = renewal_key(session)
    rows = session.connection().execute(
        select(
            Subscription.subscription_id,
            Subscription.contact_id,
            Subscription.renews_at,
            Subscription.plan,
            Subscription.status,
            Subscription.price,
            Subscription.currency,
            Contact.timezone,
            Contact.external_id,
            Contact.email,
        )
        .join(Contact, Contact.id == Subscription.contact_id)
        .outerjoin(enrolled, and_(enrolled.workflow_id == workflow_id, enrolled.key == key))
        .where(
            Subscription.subscription_id > after,
            Subscription.subscription_id <= last,
            Subscription.status.in_(["active", "trialing"]),
            Subscription.renews_at >= start,
            Subscription.renews_at < end,
            enrolled.id.is_(None),
        )
        .order_by(Subscription.subscription_id)
    )
    # Columns in field order; the join and the renews_at range exclude the NULLs the column
    # types allow. Positional and fetched at once: a million RowMappings (or fetchone calls)
    # cost seconds.
    return [RenewalCandidate(*row) for row in rows.all()]  # type: ignore[arg-type, call-arg]


@dataclass(frozen=True, slots=True)
class NewEnrollment:
    """One enrollment the renewal scan writes, with its deliveries."""

    key: str
    contact_id: int
    context: str
    """The enrollment context, already serialized as JSON."""
    deliveries: Sequence[PlannedDelivery]


def bulk_enroll(
    session: Session,
    workflow_id: str,
    workflow_version: str,
    now: datetime,
    items: Sequence[NewEnrollment],
) -> int:
    """Insert active enrollments with their scheduled deliveries. PostgreSQL: ids from the
    sequence in one query, rows through COPY in text format, formatted here: the renewal
    scan writes millions, and psycopg's per-row adaptation was a third of its client time.
    Elsewhere, plain inserts. Returns the enrollments written."""
    if not items:
        return 0
    if session.get_bind().dialect.name != "postgresql":
        _enroll_with_orm(session, workflow_id, workflow_version, now, items)
    else:
        _enroll_with_copy(session, workflow_id, workflow_version, now, items)
    return len(items)


def _enroll_with_orm(
    session: Session,
    workflow_id: str,
    workflow_version: str,
    now: datetime,
    items: Sequence[NewEnrollment],
) -> None:
    active = EnrollmentStatus.ACTIVE.value
    scheduled = DeliveryStatus.SCHEDULED.value
    for item in items:
        enrollment = Enrollment(
            workflow_id=workflow_id,
            workflow_version=workflow_version,
            key=item.key,
            contact_id=item.contact_id,
            status=active,
            started_at=now,
            context=json.loads(item.context),
        )
        session.add(enrollment)
        session.add_all(
            Delivery(
                enrollment=enrollment,
                contact_id=item.contact_id,
                workflow_id=workflow_id,
                step_id=d.step_id,
                variant=d.variant,
                template=d.template,
                status=scheduled,
                due_at=d.due_at,
                planned_at=d.due_at,
                attempts=0,
                created_at=now,
                updated_at=now,
            )
            for d in item.deliveries
        )
    session.flush()


def _enroll_with_copy(
    session: Session,
    workflow_id: str,
    workflow_version: str,
    now: datetime,
    items: Sequence[NewEnrollment],
) -> None:
    active = EnrollmentStatus.ACTIVE.value
    scheduled = DeliveryStatus.SCHEDULED.value
    connection = session.connection()
    # Only the renewal scan writes this way, and it is idempotent: a page whose commit a crash
    # loses is enrolled by the next scan. Not waiting for the WAL flush per page is safe.
    connection.execute(text("SET LOCAL synchronous_commit TO off"))
    ids = (
        connection.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence('enrollments', 'id')) "
                "FROM generate_series(1, :n)"
            ),
            {"n": len(items)},
        )
        .scalars()
        .all()
    )
    at = now.isoformat()
    # The columns every row of this page shares, escaped once.
    enrollment_tail = f"{copy_text(workflow_id)}\t{copy_text(workflow_version)}"
    delivery_head = f"{copy_text(workflow_id)}"
    step_columns: dict[tuple[str, str | None, str], str] = {}
    enrollment_rows: list[str] = []
    delivery_rows: list[str] = []
    for new_id, item in zip(ids, items, strict=True):
        enrollment_rows.append(
            f"{new_id}\t{enrollment_tail}\t{copy_text(item.key)}\t{item.contact_id}\t"
            f"{active}\t{at}\t{copy_text(item.context)}\n"
        )
        for d in item.deliveries:
            shape = (d.step_id, d.variant, d.template)
            step = step_columns.get(shape)
            if step is None:
                variant = "\\N" if d.variant is None else copy_text(d.variant)
                step = f"{copy_text(d.step_id)}\t{variant}\t{copy_text(d.template)}"
                step_columns[shape] = step
            due = d.due_at.isoformat()
            delivery_rows.append(
                f"{new_id}\t{item.contact_id}\t{delivery_head}\t{step}\t{scheduled}\t"
                f"{due}\t{due}\t0\t{at}\t{at}\n"
            )
    raw = connection.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor:
        columns = ", ".join(_ENROLLMENT_COLUMNS)
        with cursor.copy(f"COPY enrollments ({columns}) FROM STDIN") as copy:
            copy.write("".join(enrollment_rows))
        columns = ", ".join(_DELIVERY_COLUMNS)
        with cursor.copy(f"COPY deliveries ({columns}) FROM STDIN") as copy:
            copy.write("".join(delivery_rows))
