"""The catalog: products, what is bought together, and the lookups recommendations make.

Writes are ordered by the change's own time (``updated_at`` is the event's ``occurred_at``):
an upsert or delete older than what a product row holds changes nothing, so webhooks that
arrive out of order, and a file import of yesterday's feed after today's webhook, leave the
newest state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import permutations
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from remarket_mailer.db.models import Product, ProductPair
from remarket_mailer.db.repository import _insert

_CHANGED = (
    *("title", "url", "image_url", "price", "compare_at_price", "currency", "category"),
    *("tags", "available", "inventory", "variants", "updated_at", "deleted_at"),
)


@dataclass(frozen=True, slots=True)
class ProductFacts:
    """A product as templates and recommendations see it (a plain row)."""

    product_id: str
    title: str
    url: str | None
    image_url: str | None
    price: Decimal | None
    compare_at_price: Decimal | None
    currency: str | None
    category: str | None
    available: bool


_FACTS = (
    Product.product_id,
    Product.title,
    Product.url,
    Product.image_url,
    Product.price,
    Product.compare_at_price,
    Product.currency,
    Product.category,
    Product.available,
)


def upsert_products(session: Session, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert or update products (each row: every column but ``orders_count``); a row older
    than the stored one is ignored. Returns how many rows changed."""
    if not rows:
        return 0
    values = [{**row, "orders_count": 0} for row in _newest(rows)]
    statement = _insert(session, Product).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=["product_id"],
        set_={name: getattr(statement.excluded, name) for name in _CHANGED},
        where=Product.updated_at <= statement.excluded.updated_at,
    )
    return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]


def delete_products(session: Session, deleted: Mapping[str, datetime]) -> int:
    """Mark products deleted (product id → when); kept as a row so a late, older upsert
    cannot bring one back. A product never seen before is recorded deleted."""
    rows: list[dict[str, Any]] = [
        {
            "product_id": product_id,
            "title": "",
            "url": None,
            "image_url": None,
            "price": None,
            "compare_at_price": None,
            "currency": None,
            "category": None,
            "tags": [],
            "available": False,
            "inventory": None,
            "variants": [],
            "updated_at": when,
            "deleted_at": when,
        }
        for product_id, when in deleted.items()
    ]
    if not rows:
        return 0
    statement = _insert(session, Product).values([{**r, "orders_count": 0} for r in rows])
    statement = statement.on_conflict_do_update(
        index_elements=["product_id"],
        set_={
            "available": False,
            "updated_at": statement.excluded.updated_at,
            "deleted_at": statement.excluded.deleted_at,
        },
        where=Product.updated_at <= statement.excluded.updated_at,
    )
    return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]


def _newest(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One row per product (the newest): one INSERT cannot touch a row twice."""
    newest: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        seen = newest.get(row["product_id"])
        if seen is None or seen["updated_at"] <= row["updated_at"]:
            newest[row["product_id"]] = row
    return list(newest.values())


MAX_BASKET = 50
"""Distinct products of one order that are paired: 50 make 2,450 pair rows; a wholesale
order of thousands of lines says little about what goes together."""


def count_orders(session: Session, baskets: Iterable[Iterable[str]]) -> None:
    """Count orders (each the product ids it contained) into best sellers and pairs: one
    statement for the pairs, one for the products, however many orders."""
    pairs: Counter[tuple[str, str]] = Counter()
    products: Counter[str] = Counter()
    for basket in baskets:
        distinct = sorted(set(basket))[:MAX_BASKET]
        products.update(distinct)
        pairs.update(permutations(distinct, 2))
    if pairs:
        statement = _insert(session, ProductPair).values(
            [{"product_id": a, "other_id": b, "orders": n} for (a, b), n in sorted(pairs.items())]
        )
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["product_id", "other_id"],
                set_={"orders": ProductPair.orders + statement.excluded.orders},
            )
        )
    if products:
        session.connection().execute(
            update(Product)
            .where(Product.product_id == bindparam("id"))
            .values(orders_count=Product.orders_count + bindparam("n")),
            [{"id": product_id, "n": n} for product_id, n in sorted(products.items())],
        )


def products_by_id(session: Session, ids: Iterable[str]) -> dict[str, ProductFacts]:
    """The live (not deleted) products among ``ids``."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(*_FACTS).where(Product.product_id.in_(wanted), Product.deleted_at.is_(None))
    )
    return {row[0]: ProductFacts(*row) for row in rows}


PAIRS_PER_PRODUCT = 40
"""Partners read per seed product, the strongest first: enough to fill a row of
recommendations after dropping what is out of stock, in the cart or just bought."""


def bought_with(
    session: Session, seeds: Iterable[str]
) -> dict[str, list[tuple[ProductFacts, int]]]:
    """seed product → its available partners with the number of orders that had both, the
    strongest first. One query for every seed of a send batch."""
    wanted = sorted(set(seeds))
    if not wanted:
        return {}
    ranked = (
        select(
            ProductPair.product_id.label("seed"),
            ProductPair.other_id,
            ProductPair.orders,
            func.row_number()
            .over(partition_by=ProductPair.product_id, order_by=ProductPair.orders.desc())
            .label("rank"),
        )
        .where(ProductPair.product_id.in_(wanted))
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.seed, ranked.c.orders, *_FACTS)
        .join(Product, Product.product_id == ranked.c.other_id)
        .where(ranked.c.rank <= PAIRS_PER_PRODUCT)
        .where(Product.available.is_(True), Product.deleted_at.is_(None))
        .order_by(ranked.c.seed, ranked.c.orders.desc(), Product.product_id)
    )
    found: dict[str, list[tuple[ProductFacts, int]]] = {}
    for seed, orders, *facts in rows:
        found.setdefault(seed, []).append((ProductFacts(*facts), int(orders)))
    return found


def best_sellers(
    session: Session, categories: Iterable[str | None], per_category: int
) -> dict[str | None, list[ProductFacts]]:
    """category → its available best sellers (None: the whole catalog's), one query."""
    wanted = set(categories)
    if not wanted:
        return {}
    named = sorted(c for c in wanted if c is not None)
    ranked = (
        select(
            *_FACTS,
            Product.orders_count,
            func.row_number()
            .over(
                partition_by=Product.category,
                order_by=(Product.orders_count.desc(), Product.product_id),
            )
            .label("rank"),
        )
        .where(Product.available.is_(True), Product.deleted_at.is_(None))
        .where(Product.category.in_(named) if named else Product.category.is_(None))
        .subquery()
    )
    found: dict[str | None, list[ProductFacts]] = {c: [] for c in wanted}
    rows = session.execute(
        select(*(ranked.c[c.key] for c in _FACTS))
        .where(ranked.c.rank <= per_category)
        .order_by(ranked.c.category, ranked.c.rank)
    )
    for row in rows:
        found[row[7]].append(ProductFacts(*row))
    if None in wanted:
        found[None] = _overall(session, per_category)
    return found


def _overall(session: Session, limit: int) -> list[ProductFacts]:
    rows = session.execute(
        select(*_FACTS)
        .where(Product.available.is_(True), Product.deleted_at.is_(None))
        .order_by(Product.orders_count.desc(), Product.product_id)
        .limit(limit)
    )
    return [ProductFacts(*row) for row in rows]


def catalog_size(session: Session) -> tuple[int, int]:
    """(live products, available ones)."""
    live, available = session.execute(
        select(
            func.count(),
            func.count().filter(or_(Product.available.is_(True))),
        ).where(Product.deleted_at.is_(None))
    ).one()
    return int(live), int(available)
