"""Database schema migrations, for ``remarket db`` and the demo.

The entry points call these instead of Alembic or the database layer: a bad revision or a
database that does not answer is a RemarketError with one line to print.
"""

from __future__ import annotations

from alembic.util import CommandError

from remarket_mailer.db import migrate
from remarket_mailer.errors import ValidationError


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision``. Raises ValidationError for an unknown revision."""
    try:
        migrate.upgrade(database_url, revision)
    except CommandError as exc:
        raise ValidationError(f"revision {revision!r}: {_first_line(exc)}") from None


def downgrade(database_url: str, revision: str) -> None:
    """Undo migrations down to ``revision``. Raises ValidationError for an unknown revision."""
    try:
        migrate.downgrade(database_url, revision)
    except CommandError as exc:
        raise ValidationError(f"revision {revision!r}: {_first_line(exc)}") from None


def current_revision(database_url: str) -> str | None:
    """The revision the database is at, None when never migrated. Raises UnavailableError
    when the database does not answer."""
    return migrate.database_revision(database_url)


def head_revision() -> str:
    """The newest migration this code ships."""
    return migrate.head_revision()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
