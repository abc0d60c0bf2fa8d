"""The sweeper's side of deliveries: claim what is due (scheduled → queued with a lease) and
take back leases that ran out, each with the rest of its idempotency-key group, under the
same state-machine guards as every other change (``db.deliveries.status_guard``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from remarket_mailer.db.deliveries import status_guard
from remarket_mailer.db.models import Delivery, Enrollment
from remarket_mailer.domain.states import DeliveryStatus, sources_for

# Checked against the state machine when this module is imported, as in db.deliveries.
_CLAIMABLE = sources_for(DeliveryStatus.QUEUED, among=[DeliveryStatus.SCHEDULED])
_RECLAIMABLE = sources_for(
    DeliveryStatus.QUEUED, among=[DeliveryStatus.QUEUED, DeliveryStatus.SENDING]
)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery the sweeper claimed, with the idempotency key its last request used."""

    id: int
    send_key: str | None


def claim_due(
    session: Session,
    now: datetime,
    limit: int,
    lease: timedelta,
    *,
    skip_workflows: Collection[str] = (),
    only_workflows: Collection[str] | None = None,
) -> list[Claimed]:
    """Claim up to ``limit`` due deliveries (and the rest of their key groups): scheduled →
    queued with a lease. ``skip_workflows`` are left due (their provider is paused);
    ``only_workflows``, when given, limits the claim to those (a paused provider's probe).

    ``FOR UPDATE SKIP LOCKED`` on PostgreSQL lets several sweepers run at once without ever
    claiming a row twice; SQLite serialises writers instead (BEGIN IMMEDIATE).
    """
    scheduled = status_guard(_CLAIMABLE)
    query = select(Delivery.id, Delivery.send_key, Delivery.status).where(
        scheduled, Delivery.due_at <= now
    )
    if skip_workflows:
        query = query.where(
            Delivery.enrollment_id.not_in(
                select(Enrollment.id).where(Enrollment.workflow_id.in_(list(skip_workflows)))
            )
        )
    if only_workflows is not None:
        query = query.where(
            Delivery.enrollment_id.in_(
                select(Enrollment.id).where(Enrollment.workflow_id.in_(list(only_workflows)))
            )
        )
    rows = list(
        session.execute(
            query.order_by(Delivery.due_at, Delivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    rows += _rest_of_key_groups(session, rows, scheduled)
    if rows:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_([row.id for row in rows]), scheduled)
            .values(status=DeliveryStatus.QUEUED, lease_expires_at=now + lease, updated_at=now)
        )
    return [Claimed(row.id, row.send_key) for row in rows]


def reclaim_expired(
    session: Session, now: datetime, limit: int, lease: timedelta
) -> tuple[list[Claimed], list[Claimed]]:
    """Take back leased rows (and the rest of their key groups) whose worker or broker message
    was lost.

    Returns (queued rows re-enqueued, sending rows re-enqueued). A row stuck in ``sending`` may
    or may not have reached the provider: with a ``send_key`` the next attempt makes the same
    request under it and the provider answers for the first one; without, it is sent again
    blind (same Message-ID) and counted, so the operator can see how often that happens.
    """
    expired = and_(
        status_guard(_RECLAIMABLE),
        Delivery.lease_expires_at < now,
    )
    rows = list(
        session.execute(
            select(Delivery.id, Delivery.send_key, Delivery.status)
            .where(expired)
            .order_by(Delivery.lease_expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    rows += _rest_of_key_groups(session, rows, expired)
    if rows:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_([row.id for row in rows]))
            .values(status=DeliveryStatus.QUEUED, lease_expires_at=now + lease, updated_at=now)
        )
    queued = [Claimed(r.id, r.send_key) for r in rows if r.status == DeliveryStatus.QUEUED]
    sending = [Claimed(r.id, r.send_key) for r in rows if r.status == DeliveryStatus.SENDING]
    return queued, sending


def _rest_of_key_groups(session: Session, rows: Sequence[Any], condition: Any) -> list[Any]:
    """The rows matching ``condition`` that share a ``send_key`` with ``rows`` but are not among
    them, locked: a key's group must travel in one send_batch, so a claim cut short by its
    limit takes the rest of the group along (a row another sweeper holds is left to it).

    Costs a query only when a claimed row carries a key; the partial index
    ``ix_deliveries_send_key`` holds only the rows in flight.
    """
    keys = {row.send_key for row in rows if row.send_key is not None}
    if not keys:
        return []
    return list(
        session.execute(
            select(Delivery.id, Delivery.send_key, Delivery.status)
            .where(
                Delivery.send_key.in_(keys),
                Delivery.id.not_in([row.id for row in rows]),
                condition,
            )
            .order_by(Delivery.id)
            .with_for_update(skip_locked=True)
        )
    )


def next_due_at(session: Session) -> datetime | None:
    return session.scalar(
        select(func.min(Delivery.due_at)).where(Delivery.status == DeliveryStatus.SCHEDULED)
    )
