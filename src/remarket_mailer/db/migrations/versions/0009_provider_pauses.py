"""provider_pauses: a provider paused after an account or configuration fault

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10 10:00:00

A refused API key or an unverified sender domain used to fail every message for good. Such a
fault now pauses the provider instead and keeps the messages; the pause is a row here so every
worker process, on every host, sees it (SQLite included). No row means not paused.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import remarket_mailer.db.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "provider_pauses",
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("faults", sa.Integer(), nullable=False),
        sa.Column(
            "paused_until", remarket_mailer.db.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("probing", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column(
            "started_at", remarket_mailer.db.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", remarket_mailer.db.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_provider_pauses")),
    )


def downgrade() -> None:
    op.drop_table("provider_pauses")
