"""The read side of the marketer's report: what was sent, what happened to it, what was bought.

Plain frozen rows, no ORM objects: the report reads every delivery of its window (tens of
thousands), and the figures are computed from these rows by ``domain`` functions, so a change
of attribution window or of the machine-open rules recomputes old data the same way.

A delivery's moment is when it was sent, or for one never sent (skipped, failed, the holdout
group) when it was planned, or skipped: a holdout row is skipped when its contact would have
been mailed, the moment its conversions count from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from remarket_mailer.db.models import Delivery as DeliveryRow
from remarket_mailer.db.models import DiscountCode, Enrollment, Order, TrackingEvent
from remarket_mailer.domain.states import DeliveryStatus

ENGAGEMENT_KINDS = ("delivered", "bounced", "complained", "opened", "clicked", "unsubscribed")


@dataclass(frozen=True, slots=True)
class ReportDelivery:
    id: int
    contact_id: int
    enrollment_id: int
    workflow_id: str
    step_id: str
    variant: str | None
    status: str
    reason: str | None
    planned_at: datetime
    sent_at: datetime | None
    discount_code: str | None
    holdout: bool
    detail: str | None = None
    """What the worker noted: for a deferred row the rule and until when (``quiet_hours until
    …``)."""


@dataclass(frozen=True, slots=True)
class ReportEngagement:
    """One tracking event of a delivery (an ESP's webhook or our own pixel and redirect)."""

    delivery_id: int
    kind: str
    occurred_at: datetime
    provider: str
    user_agent: str | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class ReportOrder:
    order_id: str
    contact_id: int
    total: Decimal | None
    currency: str | None
    placed_at: datetime
    codes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReportCode:
    """A personal code issued by a step (pool codes included once assigned)."""

    code: str
    workflow_id: str | None
    step_id: str | None
    kind: str
    value: Decimal
    currency: str | None
    status: str
    assigned_at: datetime | None
    redeemed_at: datetime | None
    order_id: str | None
    pool: str | None = None
    """The imported pool the code came from; ``None`` for a generated code."""


def _moment() -> Any:
    """Sent: when. The holdout: when it was skipped, which is when it would have been sent
    (after quiet hours and caps). Otherwise when planned, or when skipped if that was
    earlier (an exit ends the later reminders at the order's time, not at theirs)."""
    not_sent = case(
        (DeliveryRow.reason == "holdout", DeliveryRow.updated_at),
        (DeliveryRow.updated_at < DeliveryRow.planned_at, DeliveryRow.updated_at),
        else_=DeliveryRow.planned_at,
    )
    return func.coalesce(DeliveryRow.sent_at, not_sent)


def _in_window(statement: Any, since: datetime, until: datetime, workflow_id: str | None) -> Any:
    statement = statement.where(_moment() >= since, _moment() < until).where(
        DeliveryRow.status.in_(_DONE)
    )
    if workflow_id is not None:
        statement = statement.where(DeliveryRow.workflow_id == workflow_id)
    return statement


# Rows still waiting (scheduled, queued, sending) have no outcome yet: not in the report's
# figures (the operator report counts them).
_DONE = (DeliveryStatus.SENT, DeliveryStatus.SKIPPED, DeliveryStatus.FAILED)


def deliveries(
    session: Session, since: datetime, until: datetime, workflow_id: str | None = None
) -> list[ReportDelivery]:
    """Every finished delivery whose moment is in [since, until), oldest first."""
    statement = _in_window(
        select(
            DeliveryRow.id,
            DeliveryRow.contact_id,
            DeliveryRow.enrollment_id,
            DeliveryRow.workflow_id,
            DeliveryRow.step_id,
            DeliveryRow.variant,
            DeliveryRow.status,
            DeliveryRow.reason,
            DeliveryRow.planned_at,
            DeliveryRow.sent_at,
            DeliveryRow.discount_code,
            Enrollment.context,
            DeliveryRow.detail,
        ).join(Enrollment, Enrollment.id == DeliveryRow.enrollment_id),
        since,
        until,
        workflow_id,
    ).order_by(_moment(), DeliveryRow.id)
    found: list[ReportDelivery] = []
    rows: list[Any] = list(session.execute(statement))
    for row in rows:
        fields: list[Any] = list(row)
        fields[-2] = bool((fields[-2] or {}).get("holdout"))  # the enrollment's context
        found.append(ReportDelivery(*fields))
    return found


def engagement(
    session: Session, since: datetime, until: datetime, workflow_id: str | None = None
) -> list[ReportEngagement]:
    """The tracking events of the deliveries ``deliveries`` returns (one query, joined on the
    window rather than a list of ids), oldest first."""
    statement = _in_window(
        select(
            TrackingEvent.delivery_id,
            TrackingEvent.kind,
            TrackingEvent.occurred_at,
            TrackingEvent.provider,
            TrackingEvent.user_agent,
            TrackingEvent.detail,
        )
        .join(DeliveryRow, DeliveryRow.id == TrackingEvent.delivery_id)
        .where(TrackingEvent.kind.in_(ENGAGEMENT_KINDS)),
        since,
        until,
        workflow_id,
    ).order_by(TrackingEvent.occurred_at, TrackingEvent.id)
    return [ReportEngagement(*row) for row in session.execute(statement)]


def orders(
    session: Session,
    contact_ids: Iterable[int],
    since: datetime,
    until: datetime,
) -> list[ReportOrder]:
    """Orders of ``contact_ids`` placed in [since, until), oldest first. The caller passes an
    ``until`` past the report's end by the longest attribution window: an email sent on the
    last day converts in the days after it."""
    ids = sorted(set(contact_ids))
    found: list[ReportOrder] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        rows = session.execute(
            select(
                Order.order_id,
                Order.contact_id,
                Order.total,
                Order.currency,
                Order.placed_at,
                Order.discount_codes,
            )
            .where(Order.contact_id.in_(chunk))
            .where(Order.placed_at >= since, Order.placed_at < until)
        )
        for order_id, contact_id, total, currency, placed_at, codes in rows:
            listed = (codes or {}).get("codes", [])
            found.append(
                ReportOrder(
                    order_id, contact_id, total, currency, placed_at, tuple(str(c) for c in listed)
                )
            )
    found.sort(key=lambda o: (o.placed_at, o.order_id))
    return found


_CHUNK = 5_000  # ids per IN list: well under SQLite's 32,766 parameters


def codes(
    session: Session, since: datetime, until: datetime, workflow_id: str | None = None
) -> list[ReportCode]:
    """Codes assigned to an enrollment in [since, until) (what the steps gave out)."""
    statement = (
        select(
            DiscountCode.code,
            Enrollment.workflow_id,
            DiscountCode.step_id,
            DiscountCode.kind,
            DiscountCode.value,
            DiscountCode.currency,
            DiscountCode.status,
            DiscountCode.assigned_at,
            DiscountCode.redeemed_at,
            DiscountCode.order_id,
            DiscountCode.pool,
        )
        .join(Enrollment, Enrollment.id == DiscountCode.enrollment_id)
        .where(DiscountCode.assigned_at >= since, DiscountCode.assigned_at < until)
        .order_by(DiscountCode.assigned_at, DiscountCode.id)
    )
    if workflow_id is not None:
        statement = statement.where(Enrollment.workflow_id == workflow_id)
    rows: list[Any] = list(session.execute(statement))
    return [ReportCode(*row) for row in rows]


def data_span(session: Session) -> tuple[datetime, datetime] | None:
    """The first and last moment of any finished delivery: the report's default window
    covers the data, wherever its clock is (the demo's lies in the past)."""
    first, last = session.execute(
        select(func.min(_moment()), func.max(_moment())).where(DeliveryRow.status.in_(_DONE))
    ).one()
    if first is None or last is None:
        return None
    return _aware(first), _aware(last)


def _aware(value: Any) -> datetime:
    """min()/max() over an expression bypass the column type (SQLite returns text)."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
