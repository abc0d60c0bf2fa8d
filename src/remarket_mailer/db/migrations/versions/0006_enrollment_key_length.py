"""enrollments.key wide enough for every key the schema admits

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 15:30:00

A contact-keyed enrollment's key is ``contact:<id>:<event_id>`` and a subscription's is
``<subscription_id>@<date>``: with a 255-character event or subscription id (which the event
schema accepts) both outgrow VARCHAR(255), and PostgreSQL refused the whole ingest batch.
320 covers 255 plus the longest prefix or suffix.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.alter_column(
            "key", existing_type=sa.String(255), type_=sa.String(320), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.alter_column(
            "key", existing_type=sa.String(320), type_=sa.String(255), existing_nullable=False
        )
