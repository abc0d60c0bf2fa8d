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

from sqlalchemy import bindparam, case, func, or_, select, text, update
from sqlalchemy.orm import Session

from remarket_mailer.db.models import Product, ProductCoview, ProductPair
from remarket_mailer.db.sql import dialect_insert as _insert

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
    values = [{**row, "orders_count": 0, "restocked_at": None} for row in _newest(rows)]
    statement = _insert(session, Product).values(values)
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=["product_id"],
        set_={
            **{name: getattr(excluded, name) for name in _CHANGED},
            # Out of stock (or deleted) until now and available again: a restock, which
            # back-in-stock reminders announce (domain.product_alerts).
            "restocked_at": case(
                (excluded.available & ~Product.available, excluded.updated_at),
                else_=Product.restocked_at,
            ),
        },
        where=Product.updated_at <= excluded.updated_at,
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


PAIRS_PER_PRODUCT = 12
"""Partners read per seed product, the strongest in stock first: a row of recommendations
(at most 12) even if every one is in the cart or just bought."""


def bought_with(
    session: Session, seeds: Iterable[str], per_seed: int = PAIRS_PER_PRODUCT
) -> dict[str, list[tuple[ProductFacts, int]]]:
    """seed product → its available partners with the number of orders that had both, the
    strongest first (at most ``per_seed`` each): one query for the pairs of every seed of a
    send batch, one for the products they name (each read once, however many seeds share
    it: a best seller is everyone's partner)."""
    return _partners(session, seeds, per_seed, ProductPair)


def viewed_with(
    session: Session, seeds: Iterable[str], per_seed: int = PAIRS_PER_PRODUCT
) -> dict[str, list[tuple[ProductFacts, int]]]:
    """seed product → its available partners with the number of people who looked at both
    within 30 days (``product_coviews``), the strongest first; two queries, as
    ``bought_with``."""
    return _partners(session, seeds, per_seed, ProductCoview)


_Counts = type[ProductPair] | type[ProductCoview]


def _partners(
    session: Session, seeds: Iterable[str], per_seed: int, model: _Counts
) -> dict[str, list[tuple[ProductFacts, int]]]:
    wanted = sorted(set(seeds))
    if not wanted:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        query = _PARTNERS_PG[model.__tablename__]
        rows = session.execute(query, {"seeds": wanted, "k": per_seed}).all()
    else:
        rows = session.execute(_partners_ranked(wanted, per_seed, model)).all()
    products = products_by_id(session, {other for _, other, _ in rows})
    found: dict[str, list[tuple[ProductFacts, int]]] = {}
    for seed, other, count in rows:
        if other in products:
            found.setdefault(seed, []).append((products[other], int(count)))
    for partners in found.values():
        partners.sort(key=lambda pair: (-pair[1], pair[0].product_id))
    return found


_COLUMNS = "p.product_id, p.title, p.url, p.image_url, p.price, p.compare_at_price, p.currency, "
_COLUMNS += "p.category, p.available"

# PostgreSQL: per seed, an index range read of its pairs from the strongest down
# (ix_product_pairs_rank, ix_product_coviews_rank), checked against the products as it goes
# and stopped after k in stock. A window over all pairs of the batch's seeds sorted every
# pair of a best seller instead: 1.5-2 ms per email at 10k products (benchmarks/recommend.py).
_PARTNERS_SQL = """
    SELECT s.seed, top.other_id, top.n
    FROM unnest(CAST(:seeds AS text[])) AS s(seed)
    CROSS JOIN LATERAL (
        SELECT pp.other_id, pp.{count} AS n
        FROM {table} pp
        JOIN products q ON q.product_id = pp.other_id
        WHERE pp.product_id = s.seed AND q.available AND q.deleted_at IS NULL
        ORDER BY pp.{count} DESC, pp.other_id DESC
        LIMIT :k
    ) AS top
    """
_PARTNERS_PG = {
    "product_pairs": text(_PARTNERS_SQL.format(table="product_pairs", count="orders")),
    "product_coviews": text(_PARTNERS_SQL.format(table="product_coviews", count="contacts")),
}


def _partners_ranked(wanted: list[str], per_seed: int, model: _Counts) -> Any:
    """SQLite (no LATERAL): a window over the seeds' pairs."""
    count = getattr(model, "orders" if model is ProductPair else "contacts")
    available = (
        select(
            model.product_id.label("seed"),
            model.other_id,
            count.label("n"),
            func.row_number()
            .over(
                partition_by=model.product_id,
                order_by=(count.desc(), model.other_id.desc()),
            )
            .label("rank"),
        )
        .join(Product, Product.product_id == model.other_id)
        .where(model.product_id.in_(wanted))
        .where(Product.available.is_(True), Product.deleted_at.is_(None))
        .subquery()
    )
    return select(available.c.seed, available.c.other_id, available.c.n).where(
        available.c.rank <= per_seed
    )


def best_sellers(
    session: Session, categories: Iterable[str | None], per_category: int
) -> dict[str | None, list[ProductFacts]]:
    """category → its available best sellers, the best first (None: the whole catalog's);
    one query for the named categories, one for the catalog."""
    wanted = set(categories)
    named = sorted(c for c in wanted if c is not None)
    found: dict[str | None, list[ProductFacts]] = {c: [] for c in wanted}
    if named:
        if session.get_bind().dialect.name == "postgresql":
            rows = session.execute(_SELLERS_PG, {"categories": named, "n": per_category})
        else:
            rows = session.execute(_sellers_ranked(named, per_category))
        for category, *facts in rows:
            found[category].append(ProductFacts(*facts))
    if None in wanted:
        found[None] = _overall(session, per_category)
    return found


_SELLERS_PG = text(
    f"""
    SELECT c.category, {_COLUMNS}
    FROM unnest(CAST(:categories AS text[])) AS c(category)
    CROSS JOIN LATERAL (
        SELECT * FROM products q
        WHERE q.category = c.category AND q.available AND q.deleted_at IS NULL
        ORDER BY q.orders_count DESC, q.product_id
        LIMIT :n
    ) AS p
    ORDER BY c.category, p.orders_count DESC, p.product_id
    """
).columns()


def _sellers_ranked(named: list[str], per_category: int) -> Any:
    ranked = (
        select(
            *_FACTS,
            func.row_number()
            .over(
                partition_by=Product.category,
                order_by=(Product.orders_count.desc(), Product.product_id),
            )
            .label("rank"),
        )
        .where(Product.available.is_(True), Product.deleted_at.is_(None))
        .where(Product.category.in_(named))
        .subquery()
    )
    return (
        select(ranked.c.category, *(ranked.c[c.key] for c in _FACTS))
        .where(ranked.c.rank <= per_category)
        .order_by(ranked.c.category, ranked.c.rank)
    )


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
