"""One transaction per use case: ``with uow() as session:`` commits or rolls back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from remarket_mailer.errors import RemarketError, UnavailableError


class UnitOfWork:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory

    @contextmanager
    def __call__(self) -> Iterator[Session]:
        """A transaction; ``UnavailableError`` when the database cannot be reached or the
        connection died under it (nothing was committed: the caller may retry as is)."""
        try:
            with self.session_factory.begin() as session:
                yield session
        except (OperationalError, InterfaceError) as exc:
            if not _lost_connection(exc):
                raise
            raise UnavailableError("the database is not reachable; retry shortly") from exc


@contextmanager
def database_errors_in_one_line() -> Iterator[None]:
    """For commands run by hand: any other database error inside becomes a RemarketError
    with its first line (and the usual cause), so the command prints one line, not a trace."""
    try:
        yield
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        first = (str(cause).splitlines() or [type(cause).__name__])[0]
        raise RemarketError(f"database: {first} (did you run `remarket db upgrade`?)") from None


def _lost_connection(exc: DBAPIError) -> bool:
    """A connection refused, dropped or terminated, as opposed to a query the database refused.

    SQLite reports a missing table as OperationalError too: that is a bug, not an outage."""
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        return True
    text = str(exc.orig).lower()
    return any(
        sign in text
        for sign in (
            "connection",
            "terminating",
            "server closed",
            "could not connect",
            "database is locked",
            "the database system is",
        )
    )
