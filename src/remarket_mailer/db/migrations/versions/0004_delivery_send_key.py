"""delivery send key

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:12:40.511204
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("send_key", sa.String(length=255), nullable=True))
        batch_op.create_index(
            "ix_deliveries_send_key",
            ["send_key"],
            unique=False,
            postgresql_where=sa.text("send_key IS NOT NULL"),
            sqlite_where=sa.text("send_key IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_deliveries_send_key",
            postgresql_where=sa.text("send_key IS NOT NULL"),
            sqlite_where=sa.text("send_key IS NOT NULL"),
        )
        batch_op.drop_column("send_key")
