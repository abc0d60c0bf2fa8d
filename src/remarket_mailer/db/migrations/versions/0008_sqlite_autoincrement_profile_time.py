"""SQLite ids never reused for contacts and deliveries

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-08 10:00:00

Unsubscribe tokens carry a contact id (and a delivery id), click tokens a delivery id. SQLite
hands the highest id of a table out again once its row is deleted, unless the table is
declared AUTOINCREMENT: after an erasure, the erased person's old unsubscribe link acted on the
next new contact. SQLite can only declare it when it creates a table, so both tables are
rebuilt (rows, ids and indexes kept; SQLite then counts on from the highest id present).
PostgreSQL sequences never hand an id out twice: nothing to do there.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TOKEN_TABLES = ("contacts", "deliveries")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in _TOKEN_TABLES:
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
            ):
                pass


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in _TOKEN_TABLES:
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_autoincrement": False}
            ):
                pass
