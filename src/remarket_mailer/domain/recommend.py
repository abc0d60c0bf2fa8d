"""Recommendations from the shop's own data: what is bought together, then what is viewed
together, then best sellers.

``recommend`` ranks what the caller read for a send batch (``db.catalog.bought_with``,
``viewed_with`` and ``best_sellers``): partners of the seed products score the number of
orders that had both, summed over the seeds (a product bought with two of the cart's items
ranks above one bought with one); ties go to the product id, so the same data always gives
the same email. Fewer partners than asked for are topped up with the products people looked
at together with the seeds (scored the same way, by the people who viewed both), then the best
sellers of the seeds' categories, then of the whole catalog. Never a seed, never an excluded
product (in the cart, just bought), never one twice. Availability is the caller's: it reads
only products in stock.

``viewed_together`` says which pairs a view adds to the viewed-together counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

COVIEW_WINDOW = timedelta(days=30)
"""Two products a person looked at this far apart or closer were viewed together."""
COVIEW_PARTNERS = 20
"""At most this many of a person's other recent products pair with a new view: a crawler-like
session of hundreds of views says little about what goes together."""


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
    viewed: Mapping[str, Sequence[tuple[P, int]]] | None = None,
) -> list[P]:
    """Up to ``limit`` products for someone who has (or looked at) ``seeds``: bought together
    (``partners``), then viewed together (``viewed``), then best sellers."""
    if limit <= 0:
        return []
    banned = set(seeds) | set(exclude)
    chosen = _ranked(seeds, partners, banned)[:limit]
    taken = {p.product_id for p in chosen} | banned
    for product in _ranked(seeds, viewed, taken)[: limit - len(chosen)]:
        chosen.append(product)
        taken.add(product.product_id)
    for category in [*dict.fromkeys(categories), None]:
        for product in best_sellers.get(category, ()):
            if len(chosen) >= limit:
                return chosen
            if product.product_id not in taken:
                chosen.append(product)
                taken.add(product.product_id)
    return chosen


def _ranked(
    seeds: Sequence[str], partners: Mapping[str, Sequence[tuple[P, int]]] | None, banned: set[str]
) -> list[P]:
    scores: dict[str, int] = {}
    products: dict[str, P] = {}
    for seed in dict.fromkeys(seeds):
        for product, count in (partners or {}).get(seed, ()):
            if product.product_id in banned:
                continue
            scores[product.product_id] = scores.get(product.product_id, 0) + count
            products[product.product_id] = product
    return [products[pid] for pid in sorted(scores, key=lambda pid: (-scores[pid], pid))]


def viewed_together(
    seen: Mapping[str, datetime],
    product_id: str,
    at: datetime,
    window: timedelta = COVIEW_WINDOW,
    most: int = COVIEW_PARTNERS,
) -> list[str]:
    """The products a view of ``product_id`` at ``at`` pairs with, given what the person
    looked at before (product → when): none when they had looked at this product within the
    window already (a person counts once per pair), else their other products of the window,
    the most recent ``most``."""
    earlier = seen.get(product_id)
    if earlier is not None and abs(at - earlier) <= window:
        return []
    recent = [(when, pid) for pid, when in seen.items() if pid != product_id]
    recent = [(when, pid) for when, pid in recent if abs(at - when) <= window]
    return [pid for _, pid in sorted(recent, reverse=True)[:most]]
