"""product_interests, product_changes, product_coviews, products.restocked_at: back in stock,
price drops, viewed together

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 19:10:00

A contact who viewed or carted a product is remembered with what they saw (price, currency,
availability, when). When the catalog brings a product back in stock, or its price falls far
enough below what a person saw, the alert job (services/product_alerts.py) derives a
``product.back_in_stock`` / ``product.price_dropped`` event for them. ``product_changes`` is
that job's to-do list, written in the same transaction as the product's upsert;
``products.restocked_at`` is when a product last came back from out of stock (so a person who
saw it available before it sold out is reminded too). ``product_coviews`` counts the people
who looked at two products within 30 days, for recommendations ("viewed together").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import remarket_mailer.db.models

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = remarket_mailer.db.models.UTCDateTime(timezone=True)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("products", sa.Column("restocked_at", _WHEN, nullable=True))
    op.create_table(
        "product_interests",
        sa.Column("contact_id", _ID, nullable=False),
        sa.Column("product_id", sa.String(length=255), nullable=False),
        sa.Column("seen_at", _WHEN, nullable=False),
        sa.Column("price", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("available", sa.Boolean(), nullable=True),
        sa.Column("restock_notified_at", _WHEN, nullable=True),
        sa.Column("drop_notified_price", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_product_interests_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contact_id", "product_id", name=op.f("pk_product_interests")),
    )
    op.create_index("ix_product_interests_product", "product_interests", ["product_id", "seen_at"])
    op.create_table(
        "product_coviews",
        sa.Column("product_id", sa.String(length=255), nullable=False),
        sa.Column("other_id", sa.String(length=255), nullable=False),
        sa.Column("contacts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("product_id", "other_id", name=op.f("pk_product_coviews")),
    )
    op.create_index(
        "ix_product_coviews_rank", "product_coviews", ["product_id", "contacts", "other_id"]
    )
    op.create_table(
        "product_changes",
        sa.Column("id", _ID, nullable=False),
        sa.Column("product_id", sa.String(length=255), nullable=False),
        sa.Column("noticed_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_changes")),
    )


def downgrade() -> None:
    op.drop_table("product_changes")
    op.drop_index("ix_product_coviews_rank", table_name="product_coviews")
    op.drop_table("product_coviews")
    op.drop_index("ix_product_interests_product", table_name="product_interests")
    op.drop_table("product_interests")
    with op.batch_alter_table("products") as batch:
        batch.drop_column("restocked_at")
