"""Recommendations from the shop's own orders: what is bought together, then best sellers.

``recommend`` ranks what the caller read for a send batch (``db.catalog.bought_with`` and
``best_sellers``): partners of the seed products score the number of orders that had both,
summed over the seeds (a product bought with two of the cart's items ranks above one bought
with one); ties go to the product id, so the same data always gives the same email. Fewer
partners than asked for are topped up with the best sellers of the seeds' categories, then
of the whole catalog. Never a seed, never an excluded product (in the cart, just bought),
never one twice. Availability is the caller's: it reads only products in stock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, TypeVar


class ProductLike(Protocol):
    @property
    def product_id(self) -> str: ...
    @property
    def category(self) -> str | None: ...


P = TypeVar("P", bound=ProductLike)


def recommend(
    seeds: Sequence[str],
    partners: Mapping[str, Sequence[tuple[P, int]]],
    best_sellers: Mapping[str | None, Sequence[P]],
    *,
    categories: Iterable[str | None] = (),
    exclude: Iterable[str] = (),
    limit: int = 4,
) -> list[P]:
    """Up to ``limit`` products for someone who has (or looked at) ``seeds``."""
    if limit <= 0:
        return []
    banned = set(seeds) | set(exclude)
    scores: dict[str, int] = {}
    products: dict[str, P] = {}
    for seed in dict.fromkeys(seeds):
        for product, orders in partners.get(seed, ()):
            if product.product_id in banned:
                continue
            scores[product.product_id] = scores.get(product.product_id, 0) + orders
            products[product.product_id] = product
    ranked = sorted(scores, key=lambda pid: (-scores[pid], pid))
    chosen = [products[pid] for pid in ranked[:limit]]
    taken = {p.product_id for p in chosen} | banned
    for category in [*dict.fromkeys(categories), None]:
        for product in best_sellers.get(category, ()):
            if len(chosen) >= limit:
                return chosen
            if product.product_id not in taken:
                chosen.append(product)
                taken.add(product.product_id)
    return chosen
