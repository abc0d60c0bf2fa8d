"""Every delivery's outcome, read back: what the demo and the simulator print at the end, and
when the next delivery is due (the demo's virtual clock jumps there)."""

from __future__ import annotations

from datetime import datetime

from remarket_mailer.db.claims import next_due_at
from remarket_mailer.db.reports import DeliveryRow, delivery_report
from remarket_mailer.services.unit_of_work import UnitOfWork

__all__ = ["DeliveryRow", "delivery_outcomes", "next_due"]


def delivery_outcomes(uow: UnitOfWork, changed_since: datetime | None = None) -> list[DeliveryRow]:
    """Every delivery with its contact, status, reason and subject, oldest first; with
    ``changed_since`` only those changed at or after it."""
    with uow() as session:
        return delivery_report(session, changed_since)


def next_due(uow: UnitOfWork) -> datetime | None:
    """When the earliest scheduled delivery is due; None when nothing is scheduled."""
    with uow() as session:
        return next_due_at(session)
