"""variant_winners: A/B tests decided, the workflow's history of its experiments

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 14:45:00

A step with ``winner: {after: N, alpha: a}`` stops its test once every variant has N
recipients and the leader converts better than each other variant (Bonferroni); from then on
new enrollments get the winner. The decision, its reason and the counts it was made on are
kept here, one row per step.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import remarket_mailer.db.models

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "variant_winners",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workflow_id", sa.String(length=128), nullable=False),
        sa.Column("step_id", sa.String(length=128), nullable=False),
        sa.Column("variant", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("arms", sa.JSON(), nullable=False),
        sa.Column(
            "decided_at", remarket_mailer.db.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_variant_winners")),
        sa.UniqueConstraint(
            "workflow_id", "step_id", name=op.f("uq_variant_winners_workflow_id_step_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("variant_winners")
