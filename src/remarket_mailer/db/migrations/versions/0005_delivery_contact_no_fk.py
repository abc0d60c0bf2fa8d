"""deliveries.contact_id without its own foreign key

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 15:20:00

A delivery's contact is always its enrollment's contact, and the enrollment's foreign key
already cascades a deleted contact to its enrollments and their deliveries (GDPR erasure
deletes deliveries by contact explicitly too). The second check cost the renewal scan about
4 us per delivery row on PostgreSQL - 8 s of a million-subscription scan - for no integrity
the enrollment key does not give.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("fk_deliveries_contact_id_contacts", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_deliveries_contact_id_contacts",
            "contacts",
            ["contact_id"],
            ["id"],
            ondelete="CASCADE",
        )
