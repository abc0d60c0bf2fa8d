"""segments: who is in which segment (segments/*.yaml), and when each was refreshed

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-04 19:20:00

Members are rows, so a workflow's ``in_segment('vip')``, an exit rule ``segment: vip``, the
counts of ``remarket segments list`` and an audience export read them instead of evaluating
every contact. Ingest updates the rows of the contacts an event batch touches; the
scheduler's refresh re-evaluates everyone (``ordered(7)`` changes as time passes).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import remarket_mailer.db.models

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "segment_members",
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column(
            "contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "joined_at", remarket_mailer.db.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_segment_members_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("segment", "contact_id", name=op.f("pk_segment_members")),
    )
    op.create_index(
        "ix_segment_members_contact_id", "segment_members", ["contact_id"], unique=False
    )
    op.create_table(
        "segment_states",
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=16), nullable=False),
        sa.Column(
            "refreshed_at", remarket_mailer.db.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "changed_at", remarket_mailer.db.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.PrimaryKeyConstraint("segment", name=op.f("pk_segment_states")),
    )


def downgrade() -> None:
    op.drop_table("segment_states")
    op.drop_index("ix_segment_members_contact_id", table_name="segment_members")
    op.drop_table("segment_members")
