"""A/B tests: the winners decided, and what a decision is made on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from remarket_mailer.db.models import Delivery, Order, VariantWinner
from remarket_mailer.db.sql import dialect_insert
from remarket_mailer.domain.ab_history import WinnerRecord, winner_record


def winners(session: Session, workflow_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """workflow → step → winning variant, for the tests already decided."""
    wanted = sorted(set(workflow_ids))
    if not wanted:
        return {}
    found: dict[str, dict[str, str]] = {}
    rows = session.execute(
        select(VariantWinner.workflow_id, VariantWinner.step_id, VariantWinner.variant).where(
            VariantWinner.workflow_id.in_(wanted)
        )
    )
    for workflow_id, step_id, variant in rows:
        found.setdefault(workflow_id, {})[step_id] = variant
    return found


def winner_history(
    session: Session, workflow_ids: Iterable[str] | None = None
) -> list[WinnerRecord]:
    """Every decided A/B test (of ``workflow_ids`` only, when given), oldest decision first."""
    query = select(
        VariantWinner.workflow_id,
        VariantWinner.step_id,
        VariantWinner.variant,
        VariantWinner.decided_at,
        VariantWinner.detail,
        VariantWinner.arms,
    ).order_by(VariantWinner.decided_at, VariantWinner.id)
    if workflow_ids is not None:
        wanted = sorted(set(workflow_ids))
        if not wanted:
            return []
        query = query.where(VariantWinner.workflow_id.in_(wanted))
    return [
        winner_record(workflow_id, step_id, variant, decided_at, detail, arms or {})
        for workflow_id, step_id, variant, decided_at, detail, arms in session.execute(query)
    ]


def record_winner(
    session: Session,
    workflow_id: str,
    step_id: str,
    variant: str,
    detail: str,
    arms: dict[str, Any],
    now: datetime,
) -> bool:
    """Record a decision; False when the step had one already (the first stands)."""
    statement = dialect_insert(session, VariantWinner).values(
        workflow_id=workflow_id,
        step_id=step_id,
        variant=variant,
        detail=detail,
        arms=arms,
        decided_at=now,
    )
    statement = statement.on_conflict_do_nothing(index_elements=["workflow_id", "step_id"])
    return session.execute(statement.returning(VariantWinner.id)).scalar_one_or_none() is not None


@dataclass(frozen=True, slots=True)
class VariantSend:
    contact_id: int
    variant: str
    sent_at: datetime


def sent_variants(
    session: Session, workflow_id: str, step_id: str, sent_before: datetime
) -> list[VariantSend]:
    """The sends of a step's variants made before ``sent_before`` (whose window has run)."""
    rows = session.execute(
        select(Delivery.contact_id, Delivery.variant, Delivery.sent_at)
        .where(Delivery.workflow_id == workflow_id, Delivery.step_id == step_id)
        .where(Delivery.status == "sent", Delivery.variant.is_not(None))
        .where(Delivery.sent_at < sent_before)
    )
    return [VariantSend(c, v, s) for c, v, s in rows if v is not None and s is not None]


def orders_of(
    session: Session, contact_ids: Iterable[int], since: datetime
) -> list[tuple[int, str, datetime, Decimal | None]]:
    """(contact, order id, placed at, total) of these contacts since ``since``."""
    ids = sorted(set(contact_ids))
    found: list[tuple[int, str, datetime, Decimal | None]] = []
    for start in range(0, len(ids), 5_000):
        rows = session.execute(
            select(Order.contact_id, Order.order_id, Order.placed_at, Order.total)
            .where(Order.contact_id.in_(ids[start : start + 5_000]))
            .where(Order.placed_at >= since)
        )
        found.extend((c, o, p, t) for c, o, p, t in rows if c is not None)
    return found
