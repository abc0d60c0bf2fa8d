"""``recommendations(n)`` in templates and conditions: looked up once per send batch.

Each email of a batch gets a ``Recommendations`` that knows what the email is about (the
products of its cart, order or viewed product) but reads nothing until a template or a
condition calls it; the first call reads the catalog for every email of the batch at once
(``services.recommendations.for_batch``: six queries), so a workflow that never shows
recommendations costs nothing, and one that does costs a fixed number of queries per batch,
not per email.

Products an order event brought itself (``event.recommendations``, from the shop's own
engine) come first, minus what was just bought; the catalog's bought-together and best
sellers fill the rest.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from remarket_mailer.db.session import Session
from remarket_mailer.services.recommendations import MAX_SHOWN, Basis, for_batch
from remarket_mailer.services.unit_of_work import UnitOfWork


def basis_of_event(event: Mapping[str, Any]) -> tuple[Basis, list[dict[str, Any]]]:
    """What an email about ``event`` is about, and the products the event itself suggests
    (never one of its own items)."""
    items = [i for i in event.get("items") or [] if isinstance(i, Mapping)]
    own = [str(i["product_id"]) for i in items if i.get("product_id")]
    viewed = event.get("product_id")
    seeds = tuple(dict.fromkeys([*own, *([str(viewed)] if viewed else [])]))
    category = event.get("category")
    suggested = [
        dict(r)
        for r in event.get("recommendations") or []
        if isinstance(r, Mapping) and str(r.get("product_id")) not in seeds
    ]
    return Basis(seeds, frozenset(seeds), (category,) if category else ()), suggested


class BatchRecommendations:
    """The recommendations of one send batch, read on first use."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.session: Session | None = None
        """The batch's own transaction while it decides (a step's condition may call
        ``recommendations``: a second connection would wait on the batch's write lock);
        None afterwards, when templates render outside it."""
        self.bases: dict[int, Basis] = {}
        self.suggested: dict[int, list[dict[str, Any]]] = {}
        self.found: dict[int, list[dict[str, Any]]] | None = None

    def register(self, key: int, event: Mapping[str, Any]) -> None:
        """Say what email ``key`` is about, before any email of the batch asks: the first
        ask reads for all of them."""
        basis, suggested = basis_of_event(event)
        self.bases[key] = Basis(
            basis.seeds,
            basis.exclude | {str(s.get("product_id")) for s in suggested},
            basis.categories,
        )
        self.suggested[key] = suggested

    def for_email(self, key: int) -> Recommendations:
        return Recommendations(self, key, self.suggested.get(key, []))

    def catalog_picks(self, key: int) -> list[dict[str, Any]]:
        if self.found is None:
            if self.session is not None:
                picks = for_batch(self.session, self.bases, MAX_SHOWN)
            else:
                with self.uow() as session:
                    picks = for_batch(session, self.bases, MAX_SHOWN)
            self.found = {k: [_view(p) for p in v] for k, v in picks.items()}
        return self.found.get(key, [])


class Recommendations:
    """``recommendations(4)`` → up to 4 products (dicts with product_id, name, url,
    image_url, price, compare_at_price, currency, category); iterating or testing it uses all
    (up to 12)."""

    def __init__(self, batch: BatchRecommendations, key: int, suggested: Sequence[Any]) -> None:
        self._batch, self._key, self._suggested = batch, key, list(suggested)

    def __call__(self, n: int = 4) -> list[dict[str, Any]]:
        n = max(0, min(int(n), MAX_SHOWN))
        picks = self._suggested[:n]
        if len(picks) < n:
            picks += self._batch.catalog_picks(self._key)[: n - len(picks)]
        return picks

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self(MAX_SHOWN))

    def __len__(self) -> int:
        return len(self(MAX_SHOWN))

    def __bool__(self) -> bool:
        return bool(self(1))


def _view(product: Any) -> dict[str, Any]:
    price: Decimal | None = product.price
    return {
        "product_id": product.product_id,
        "name": product.title,
        "url": product.url,
        "image_url": product.image_url,
        "price": price,
        "compare_at_price": product.compare_at_price,
        "currency": product.currency,
        "category": product.category,
    }
