"""webhook one-time tokens (Mailgun replay protection)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 15:30:00

Mailgun's signature covers a timestamp and a token, not the body: a captured signature block
verified again with any body. Each token is now accepted once, remembered for as long as its
signature can still be fresh (20 minutes), and rows older than that are deleted as new ones
come in, so the table holds minutes of webhooks, not history.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import remarket_mailer.db.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_tokens",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("token", sa.String(length=255), nullable=False),
        sa.Column("seen_at", remarket_mailer.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_tokens")),
        sa.UniqueConstraint("provider", "token", name=op.f("uq_webhook_tokens_provider_token")),
    )
    with op.batch_alter_table("webhook_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_tokens_seen_at", ["seen_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_tokens_seen_at")
    op.drop_table("webhook_tokens")
