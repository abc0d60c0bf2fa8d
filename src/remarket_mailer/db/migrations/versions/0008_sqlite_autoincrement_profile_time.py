"""SQLite ids never reused for contacts and deliveries; contacts.profile_updated_at

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 10:00:00

Unsubscribe tokens carry a contact id (and a delivery id), click tokens a delivery id. SQLite
hands the highest id of a table out again once its row is deleted, unless the table is
declared AUTOINCREMENT: after an erasure, the erased person's old unsubscribe link acted on the
next new contact. SQLite can only declare it when it creates a table, so both tables are
rebuilt (rows, ids and indexes kept; SQLite then counts on from the highest id present).
PostgreSQL sequences never hand an id out twice: nothing to do there.

``contacts.profile_updated_at``: the occurred_at of the newest profile event applied, so an
older ``contact.upserted`` (a late shop webhook) no longer sets the name back. Empty for
existing contacts: the next profile event applies, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import remarket_mailer.db.models

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(
        "contacts",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True},
    ) as batch_op:
        batch_op.add_column(
            sa.Column(
                "profile_updated_at",
                remarket_mailer.db.models.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
    if sqlite:
        with op.batch_alter_table(
            "deliveries", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(
        "contacts",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": False},
    ) as batch_op:
        batch_op.drop_column("profile_updated_at")
    if sqlite:
        with op.batch_alter_table(
            "deliveries", recreate="always", table_kwargs={"sqlite_autoincrement": False}
        ):
            pass
