"""One transaction per use case: ``with uow() as session:`` commits or rolls back.

The session is ``db.session.Session``; what the transaction can fail with is listed in
``db.session.transaction`` (services never see SQLAlchemy's own errors)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from remarket_mailer.db.session import (
    Session,
    SessionFactory,
    database_errors_in_one_line,
    transaction,
)

__all__ = ["UnitOfWork", "database_errors_in_one_line"]


class UnitOfWork:
    def __init__(self, session_factory: SessionFactory) -> None:
        self.session_factory = session_factory

    @contextmanager
    def __call__(self) -> Iterator[Session]:
        """A transaction; ``UnavailableError`` when the database cannot be reached or the
        connection died under it (nothing was committed: the caller may retry as is),
        ``RowConflict`` / ``ValueRefused`` when it refused a row or a value."""
        with transaction(self.session_factory) as session:
            yield session
