"""What a view or a cart says about a contact's interest in products, for back-in-stock and
price-drop reminders: the price and currency they saw, whether the catalog had it in stock,
when. An order of a product ends the interest in it (they have it now)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from remarket_mailer.db.interests import Sighting
from remarket_mailer.domain.recommend import viewed_together
from remarket_mailer.schemas import (
    AnyEvent,
    CartUpdated,
    CheckoutStarted,
    OrderPlaced,
    ProductViewed,
)

if TYPE_CHECKING:
    from remarket_mailer.db.contacts import ContactRow as Contact
    from remarket_mailer.services.ingest.batch import Batch


def seen_product_ids(event: AnyEvent) -> set[str]:
    """The products whose availability a view or cart line records."""
    if isinstance(event, ProductViewed):
        return {event.product_id}
    if isinstance(event, CartUpdated | CheckoutStarted):
        return {i.product_id for i in event.items if i.product_id}
    return set()


def note_interest(batch: Batch, contact: Contact, event: AnyEvent) -> None:
    """Keep the event's sightings (or, for an order, what it bought) for the batch's end."""
    at = event.occurred_at
    if isinstance(event, OrderPlaced):
        for item in event.items:
            if item.product_id:
                key = (contact.id, item.product_id)
                batch.bought[key] = max(at, batch.bought.get(key, at))
                seen = batch.sightings.get(key)
                if seen is not None and seen.seen_at <= at:
                    del batch.sightings[key]
        return
    found: list[tuple[str, Decimal | None, str | None]] = []
    if isinstance(event, ProductViewed):
        _count_coview(batch, contact.id, event.product_id, at)
        known = batch.products.get(event.product_id)
        price = event.price if event.price is not None or known is None else known.price
        currency = event.currency or (known.currency if known is not None else None)
        found.append((event.product_id, price, currency))
    elif isinstance(event, CartUpdated | CheckoutStarted):
        found += [(i.product_id, i.unit_price, event.currency) for i in event.items if i.product_id]
    for product_id, price, currency in found:
        known = batch.products.get(product_id)
        available = known.available if known is not None else None
        key = (contact.id, product_id)
        if key not in batch.sightings or batch.sightings[key].seen_at <= at:
            batch.sightings[key] = Sighting(contact.id, product_id, at, price, currency, available)


def _count_coview(batch: Batch, contact_id: int, product_id: str, at: datetime) -> None:
    """A person's first look at a product lately pairs it with what else they looked at."""
    seen = batch.recent_views.setdefault(contact_id, {})
    for other in viewed_together(seen, product_id, at):
        batch.coviews[(product_id, other)] += 1
        batch.coviews[(other, product_id)] += 1
    if product_id not in seen or seen[product_id] < at:
        seen[product_id] = at
