"""products and product_pairs: the catalog, and what is bought together

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 13:40:00

Cross-sell and browse-abandonment emails need products to show that the events themselves
do not carry (Shopify and WooCommerce orders never carry recommendations). The catalog comes
from product events, the shops' product webhooks and ``remarket catalog import``; pairs are
counted as orders arrive, so a recommendation is one index range read per product.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import remarket_mailer.db.models

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = remarket_mailer.db.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("product_id", sa.String(length=255), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("image_url", sa.String(length=2048), nullable=True),
        sa.Column("price", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("compare_at_price", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("category", sa.String(length=255), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("inventory", sa.Integer(), nullable=True),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("orders_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.Column("deleted_at", _WHEN, nullable=True),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_products")),
    )
    op.create_index(
        "ix_products_category_orders",
        "products",
        ["category", "orders_count", "product_id"],
        unique=False,
    )
    op.create_index("ix_products_orders", "products", ["orders_count", "product_id"], unique=False)
    op.create_table(
        "product_pairs",
        sa.Column("product_id", sa.String(length=255), nullable=False),
        sa.Column("other_id", sa.String(length=255), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("product_id", "other_id", name=op.f("pk_product_pairs")),
    )
    op.create_index(
        "ix_product_pairs_rank", "product_pairs", ["product_id", "orders", "other_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_product_pairs_rank", table_name="product_pairs")
    op.drop_table("product_pairs")
    op.drop_index("ix_products_orders", table_name="products")
    op.drop_index("ix_products_category_orders", table_name="products")
    op.drop_table("products")
