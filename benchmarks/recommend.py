"""Recommendation lookup benchmark: a catalog of N products (default 100,000), the
bought-together counts of M orders (default 1,000,000) and the viewed-together counts of V
browsing sessions (default 1,000,000) on PostgreSQL.

Prints the cost per email of ``services.recommendations.for_batch`` for send batches of 500
emails (each about a cart of 1-3 products, popularity skewed like real shops'), next to a
baseline measured in the same run: a bare primary-key read of the same batch's seed products
(what any email showing its cart's products pays). Target (issue 20): <= 1 ms per email.

    python benchmarks/recommend.py [--products 100000] [--orders 1000000] [--views 1000000]
        [--batches 20]
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import scratch_database  # noqa: E402
from sqlalchemy import select, text  # noqa: E402

from remarket_mailer.db.engine import make_engine, make_session_factory  # noqa: E402
from remarket_mailer.db.models import Product  # noqa: E402
from remarket_mailer.services.recommendations import Basis, for_batch  # noqa: E402

NOW = datetime(2026, 12, 1, tzinfo=UTC)
BATCH = 500
CATEGORIES = 1_000


def popularity(products: int, rng: random.Random) -> tuple[list[float], int]:
    """Cumulative Zipf(1) weights: a few products sell a lot, most rarely."""
    weights = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(products)))
    return weights, products


def draw(weights: list[float], rng: random.Random) -> int:
    return bisect.bisect_left(weights, rng.random() * weights[-1])


def populate(url: str, products: int, orders: int, views: int, rng: random.Random) -> float:
    """Products, order lines and browsing sessions through COPY, then bought-together pairs,
    best sellers and viewed-together pairs computed in SQL the way ingest would have counted
    them event by event."""
    started = time.perf_counter()
    weights, _ = popularity(products, rng)
    engine = make_engine(url)
    with engine.begin() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor:
            with cursor.copy(
                "COPY products (product_id, title, url, image_url, price, currency, category, "
                "tags, available, variants, orders_count, updated_at) FROM STDIN"
            ) as copy:
                for n in range(products):
                    copy.write_row(
                        (
                            f"p{n}",
                            f"Product {n}",
                            f"https://shop.example/p/{n}",
                            f"https://cdn.shop.example/{n}.jpg",
                            "19.99",
                            "EUR",
                            f"c{n % CATEGORIES}",
                            "[]",
                            n % 20 != 0,  # 5 % out of stock
                            "[]",
                            0,
                            NOW,
                        )
                    )
            cursor.execute("CREATE TEMP TABLE lines (order_id integer, product_id text)")
            with cursor.copy("COPY lines (order_id, product_id) FROM STDIN") as copy:
                for order in range(orders):
                    basket = {draw(weights, rng) for _ in range(rng.randint(1, 5))}
                    for n in basket:
                        copy.write_row((order, f"p{n}"))
            cursor.execute(
                "INSERT INTO product_pairs (product_id, other_id, orders) "
                "SELECT a.product_id, b.product_id, count(*) FROM lines a "
                "JOIN lines b ON a.order_id = b.order_id AND a.product_id <> b.product_id "
                "GROUP BY a.product_id, b.product_id"
            )
            cursor.execute("CREATE TEMP TABLE seen (session_id integer, product_id text)")
            with cursor.copy("COPY seen (session_id, product_id) FROM STDIN") as copy:
                for visit in range(views):
                    looked = {draw(weights, rng) for _ in range(rng.randint(1, 5))}
                    for n in looked:
                        copy.write_row((visit, f"p{n}"))
            cursor.execute(
                "INSERT INTO product_coviews (product_id, other_id, contacts) "
                "SELECT a.product_id, b.product_id, count(*) FROM seen a "
                "JOIN seen b ON a.session_id = b.session_id AND a.product_id <> b.product_id "
                "GROUP BY a.product_id, b.product_id"
            )
            cursor.execute(
                "UPDATE products SET orders_count = s.n FROM "
                "(SELECT product_id, count(*) AS n FROM lines GROUP BY product_id) s "
                "WHERE products.product_id = s.product_id"
            )
        connection.execute(text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


def batches(products: int, count: int, rng: random.Random) -> list[dict[int, Basis]]:
    weights, _ = popularity(products, rng)
    found = []
    for _ in range(count):
        bases = {}
        for email in range(BATCH):
            seeds = tuple(dict.fromkeys(f"p{draw(weights, rng)}" for _ in range(rng.randint(1, 3))))
            bases[email] = Basis(seeds, frozenset(seeds))
        found.append(bases)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--views", type=int, default=1_000_000, help="browsing sessions")
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    rng = random.Random(20)
    with scratch_database() as url:
        loaded = populate(url, args.products, args.orders, args.views, rng)
        engine = make_engine(url)
        with engine.connect() as connection:
            pairs = connection.execute(text("SELECT count(*) FROM product_pairs")).scalar_one()
            coviews = connection.execute(text("SELECT count(*) FROM product_coviews")).scalar_one()
        print(
            f"catalog: {args.products:,} products, {args.orders:,} orders, {pairs:,} pair rows, "
            f"{args.views:,} browsing sessions, {coviews:,} viewed-together rows "
            f"(loaded in {loaded:.0f} s)"
        )
        sessions = make_session_factory(engine)
        work = batches(args.products, args.batches, rng)
        ours: list[float] = []
        base: list[float] = []
        shown: list[int] = []
        for bases in work:  # interleaved, batch by batch
            seeds = sorted({s for b in bases.values() for s in b.seeds})
            with sessions() as session:
                started = time.perf_counter()
                rows = session.execute(
                    select(Product.product_id, Product.title, Product.price).where(
                        Product.product_id.in_(seeds)
                    )
                ).all()
                base.append((time.perf_counter() - started) / BATCH)
                assert rows
            with sessions() as session:
                started = time.perf_counter()
                found = for_batch(session, bases, limit=4)
                ours.append((time.perf_counter() - started) / BATCH)
                shown.extend(len(v) for v in found.values())
        engine.dispose()
    mine, theirs = statistics.median(ours), statistics.median(base)
    print(
        f"recommendations: {mine * 1e6:,.0f} µs/email (range {min(ours) * 1e6:,.0f}-"
        f"{max(ours) * 1e6:,.0f}) over {args.batches} batches of {BATCH}; "
        f"{statistics.mean(shown):.2f} products shown per email (4 asked)"
    )
    print(
        f"baseline, primary-key read of the seeds: {theirs * 1e6:,.0f} µs/email; "
        f"ratio {mine / theirs:.1f}x; target <= 1,000 µs/email: "
        f"{'met' if mine <= 1e-3 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
