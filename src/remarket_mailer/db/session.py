"""The session type services are handed, and the transaction that hands it out.

Services name ``Session`` from here and take it from the unit of work; they never import
SQLAlchemy. What a transaction can fail with reaches them as this module's errors:
``UnavailableError`` (the connection is gone), ``RowConflict`` (a concurrent transaction wrote
the same unique row first) and ``ValueRefused`` (a value the database will not store).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker

from remarket_mailer.errors import RemarketError, UnavailableError

__all__ = [
    "RowConflict",
    "Session",
    "SessionFactory",
    "ValueRefused",
    "database_errors_in_one_line",
    "is_postgresql",
    "transaction",
]

SessionFactory = sessionmaker[Session]


class RowConflict(Exception):
    """A unique constraint refused a row at commit: another transaction wrote it first.
    Nothing was committed; running the use case again sees that row."""


class ValueRefused(Exception):
    """The database refused a value (too long, out of range). Nothing was committed."""


@contextmanager
def transaction(factory: SessionFactory) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back when it raises.

    Raises UnavailableError when the database cannot be reached or the connection died under
    it, RowConflict for a unique row written concurrently, ValueRefused for a value out of
    range for its column; the original error is the cause."""
    try:
        with factory.begin() as session:
            yield session
    except (OperationalError, InterfaceError) as exc:
        if not _lost_connection(exc):
            raise
        raise UnavailableError("the database is not reachable; retry shortly") from exc
    except IntegrityError as exc:
        raise RowConflict(str(exc.orig)) from exc
    except DataError as exc:
        raise ValueRefused(str(exc.orig)) from exc


def is_postgresql(session: Session) -> bool:
    """True on PostgreSQL (many writers), False on SQLite (a single writer)."""
    return session.get_bind().dialect.name == "postgresql"


@contextmanager
def database_errors_in_one_line() -> Iterator[None]:
    """For commands run by hand: any other database error inside becomes a RemarketError
    with its first line (and the usual cause), so the command prints one line, not a trace."""
    try:
        yield
    except (SQLAlchemyError, RowConflict, ValueRefused) as exc:
        error = exc.__cause__ if isinstance(exc, RowConflict | ValueRefused) else exc
        cause = getattr(error, "orig", None) or error
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
