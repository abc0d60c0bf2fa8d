"""``remarket db``: apply, undo and show the database migrations (Alembic, via a service)."""

from __future__ import annotations

from typing import Annotated

import typer

from remarket_mailer.config import Settings
from remarket_mailer.entrypoints.cli_common import (
    console,
    current_settings,
    fail,
    one_line_errors,
)
from remarket_mailer.entrypoints.cli_style import CommandGroup
from remarket_mailer.errors import RemarketError

db_app = CommandGroup(help="Database migrations (Alembic).")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply database migrations up to REVISION (all of them by default)."""
    from remarket_mailer.services import migrations

    settings = current_settings()
    with one_line_errors():
        migrations.upgrade(settings.database_url, revision)
    console.print(f"database at revision {_current_revision(settings)}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[
        str, typer.Argument(help="Revision to go back to; -1 undoes the newest, base all.")
    ] = "-1",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Undo database migrations down to REVISION: columns or tables they added are dropped."""
    from remarket_mailer.services import migrations

    settings = current_settings()
    current = _current_revision(settings)
    if current is None:
        raise fail("the database is not migrated: there is nothing to downgrade")
    if not yes and not typer.confirm(
        f"Downgrade the database from revision {current} to {revision}? "
        "Data in what the undone migrations added is lost"
    ):
        raise typer.Exit(code=1)
    with one_line_errors():
        migrations.downgrade(settings.database_url, revision)
    now = _current_revision(settings)
    console.print(f"database at revision {now or 'base (not migrated)'}")


@db_app.command("current")
def db_current() -> None:
    """Show the revision the database is at and the one this version expects."""
    from remarket_mailer.services.migrations import head_revision

    current = _current_revision(current_settings())
    head = head_revision()
    if current == head:
        console.print(f"database at revision {current} (head: up to date)")
        return
    found = f"at revision {current}" if current else "not migrated"
    console.print(f"database {found}; this version expects {head}: run `remarket db upgrade`")


def _current_revision(settings: Settings) -> str | None:
    from remarket_mailer.services.migrations import current_revision

    try:
        return current_revision(settings.database_url)
    except RemarketError as exc:
        raise fail(str(exc)) from None
