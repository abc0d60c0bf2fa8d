"""Alembic, driven from code: ``remarket db upgrade`` and the test fixtures call these."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from remarket_mailer.db.engine import make_engine
from remarket_mailer.errors import UnavailableError

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (all of them by default)."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    """Undo migrations down to ``revision`` (``-1``: the newest applied one; ``base``: all)."""
    command.downgrade(alembic_config(database_url), revision)


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    value = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return str(value) if value is not None else None


def database_revision(database_url: str) -> str | None:
    """``current_revision`` of the database at ``database_url``, on a connection of its own.

    Raises UnavailableError (one line) when the database does not answer."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return current_revision(connection)
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise UnavailableError(f"the database does not answer: {first}") from None
    finally:
        engine.dispose()


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest migration this code ships (read once: /v1/health asks on every call)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def schema_problem(connection: Connection) -> str | None:
    """None when the database is migrated to this code's head, else a sentence saying what
    to do. Raises the driver's error when the database cannot be reached."""
    # Read alembic's table directly: a MigrationContext logs two INFO lines per check.
    current = current_revision(connection)
    head = head_revision()
    if current == head:
        return None
    found = f"at revision {current}" if current else "not migrated (no revision)"
    return (
        f"the database schema is {found}, this version expects {head}: "
        "run `remarket db upgrade` (with the same REMARKET_DATABASE_URL)"
    )
