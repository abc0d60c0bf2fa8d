"""Recommendations for a whole send batch: six queries, however many emails.

``for_batch`` takes what each email is about (the products of its cart, order or view) and
returns the products to show, ranked by ``domain.recommend``. Templates reach them as
``recommendations(n)``; a step's ``condition`` can test ``recommendations(1)`` to skip an
email that would have nothing to show.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from remarket_mailer.db import catalog as catalog_db
from remarket_mailer.db.catalog import ProductFacts
from remarket_mailer.db.session import Session
from remarket_mailer.domain.recommend import recommend

MAX_SHOWN = 12
"""The most a template may ask for: what one batch reads per seed is sized for this."""

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Basis:
    """What one email is about: its products (``seeds``), the products it must not show
    (in the cart, just bought), and the seeds' categories (the fallback's)."""

    seeds: tuple[str, ...]
    exclude: frozenset[str] = field(default_factory=frozenset)
    categories: tuple[str | None, ...] = ()


def for_batch(
    session: Session, bases: Mapping[K, Basis], limit: int = MAX_SHOWN
) -> dict[K, list[ProductFacts]]:
    """key → up to ``limit`` products, for every email of a batch at once."""
    if not bases:
        return {}
    seeds = {s for basis in bases.values() for s in basis.seeds}
    # Enough partners and best sellers that a row survives dropping what an email must not
    # show (its own products).
    reach = limit + max((len(b.seeds) + len(b.exclude) for b in bases.values()), default=0)
    partners = catalog_db.bought_with(session, seeds, per_seed=reach)
    viewed = catalog_db.viewed_with(session, seeds, per_seed=reach)
    seed_facts = catalog_db.products_by_id(session, seeds) if seeds else {}
    categories: dict[K, tuple[str | None, ...]] = {}
    for key, basis in bases.items():
        known = tuple(seed_facts[s].category for s in basis.seeds if s in seed_facts)
        categories[key] = tuple(dict.fromkeys((*basis.categories, *known)))
    wanted = {c for found in categories.values() for c in found} | {None}
    sellers = catalog_db.best_sellers(session, wanted, reach)
    return {
        key: recommend(
            basis.seeds,
            partners,
            sellers,
            categories=categories[key],
            exclude=basis.exclude,
            limit=limit,
            viewed=viewed,
        )
        for key, basis in bases.items()
    }


def basis_of(items: Sequence[Mapping[str, object]], extra_exclude: Sequence[str] = ()) -> Basis:
    """The basis of an email about line items (a cart or an order): they are the seeds and
    are never shown back."""
    ids = tuple(dict.fromkeys(str(i["product_id"]) for i in items if i.get("product_id")))
    return Basis(ids, frozenset(ids) | frozenset(extra_exclude))
