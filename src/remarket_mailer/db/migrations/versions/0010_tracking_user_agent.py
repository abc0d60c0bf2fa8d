"""tracking_events.user_agent: what opened or clicked, for telling people from machines

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 13:30:00

Apple Mail Privacy Protection fetches every image of a message on delivery, and link scanners
of corporate mail systems follow every link within seconds: counted as people, they inflate
open and click rates. The report classifies each open and click from its user agent and its
delay after sending (``domain.engagement``), at read time, so a better rule recomputes old
data. Rows from before this migration have no user agent: they are classified by delay alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tracking_events") as batch:
        batch.add_column(sa.Column("user_agent", sa.String(length=512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tracking_events") as batch:
        batch.drop_column("user_agent")
