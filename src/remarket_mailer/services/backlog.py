"""How far behind sending is: deliveries due and not sent, for the scheduler's gauge."""

from __future__ import annotations

from remarket_mailer.db import backlog as backlog_db
from remarket_mailer.domain.clock import Clock
from remarket_mailer.services.unit_of_work import UnitOfWork


def count_backlog(uow: UnitOfWork, clock: Clock) -> dict[str, int]:
    """``{"scheduled": n, "queued": n, "sending": n}``: due but not claimed yet, claimed and in
    the broker, taken by a worker. Raises UnavailableError when the database is away."""
    with uow() as session:
        counts = backlog_db.due_backlog(session, clock.now())
    return {status: counts.get(status, 0) for status in ("scheduled", "queued", "sending")}
