"""Back in stock and price drop: which people a catalog change concerns, once per change.

A person's interest is what they saw of a product when they last viewed or carted it (price,
currency, availability, when). When the catalog changes, each interest is compared with the
product as it is now:

- **back in stock**: the product is live and available, and it was not when they saw it, or
  it sold out after they saw it and came back (``restocked_at`` later than their sighting);
- **price drop**: the product is live and available, in the currency they saw it in, and its
  price is at least ``percent`` % below the reference: the price they saw, or the price they
  were last told about (a further drop is news, the same price twice is not).

Only interests seen within the window count. Each alert's event id is derived from the
contact, the product and the change (the restock's time, the new price and currency), so
deriving it again, after a crash or a replay, gives the same id, and the event is a
duplicate: never two emails for one change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Literal

AlertKind = Literal["back_in_stock", "price_dropped"]

DEFAULT_DROP_PERCENT = Decimal(10)
"""A price drop a workflow reacts to unless its trigger says otherwise."""
DEFAULT_WINDOW = timedelta(days=30)
"""Interest older than this is forgotten: a view a season ago says little."""


@dataclass(frozen=True, slots=True)
class Interest:
    """What one contact saw of one product (their newest sighting)."""

    contact_id: int
    product_id: str
    seen_at: datetime
    price: Decimal | None
    currency: str | None
    available: bool | None
    """None: the catalog did not know the product then (counted as available)."""
    restock_notified_at: datetime | None = None
    """The restock (``ProductState.restocked_at``) they were reminded of."""
    drop_notified_price: Decimal | None = None
    """The lowest price they were told about since their sighting."""


@dataclass(frozen=True, slots=True)
class ProductState:
    """The product as the catalog holds it now."""

    product_id: str
    available: bool
    deleted: bool
    price: Decimal | None
    currency: str | None
    restocked_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Alert:
    """One derived event for one contact: what changed and since when."""

    kind: AlertKind
    contact_id: int
    product_id: str
    event_id: str
    occurred_at: datetime
    previous_price: Decimal | None = None
    """Price drop: the reference price (what they saw, or were last told)."""
    price: Decimal | None = None
    currency: str | None = None
    drop_percent: Decimal | None = None
    """Price drop: how far below the reference, in percent, rounded down to a whole one."""


def alert_event_id(kind: AlertKind, contact_id: int, product_id: str, change: str) -> str:
    """The derived event's id: the same contact, product and change give the same id."""
    digest = hashlib.sha256(f"{contact_id}\x1f{product_id}\x1f{change}".encode()).hexdigest()
    return f"derived:{kind}:{contact_id}:{digest[:32]}"


def back_in_stock(
    interest: Interest, product: ProductState, now: datetime, window: timedelta
) -> Alert | None:
    """The back-in-stock alert ``interest`` is owed by ``product``'s state, if any."""
    if not _live(interest, product, now, window):
        return None
    sold_out_since = interest.available is False or (
        product.restocked_at is not None and product.restocked_at > interest.seen_at
    )
    if not sold_out_since:
        return None
    restocked = product.restocked_at or product.updated_at
    if interest.restock_notified_at is not None and interest.restock_notified_at >= restocked:
        return None  # told already, about this restock or a later one
    change = f"restock@{restocked.isoformat()}"
    return Alert(
        kind="back_in_stock",
        contact_id=interest.contact_id,
        product_id=product.product_id,
        event_id=alert_event_id("back_in_stock", interest.contact_id, product.product_id, change),
        occurred_at=max(restocked, interest.seen_at),
        price=product.price,
        currency=product.currency,
    )


def price_dropped(
    interest: Interest,
    product: ProductState,
    now: datetime,
    window: timedelta,
    percent: Decimal = DEFAULT_DROP_PERCENT,
) -> Alert | None:
    """The price-drop alert ``interest`` is owed by ``product``'s state, if any: the price in
    the same currency at most ``reference × (1 − percent / 100)``."""
    if not _live(interest, product, now, window) or interest.available is False:
        return None  # a person who saw it sold out hears that it is back, not its price
    if product.price is None or interest.price is None or interest.price <= 0:
        return None
    if product.currency is None or product.currency != interest.currency:
        return None
    reference = interest.price
    if interest.drop_notified_price is not None:
        reference = min(reference, interest.drop_notified_price)
    if product.price > reference * (1 - percent / 100):
        return None
    drop = ((reference - product.price) * 100 / reference).to_integral_value(rounding=ROUND_FLOOR)
    change = f"price@{product.currency}:{product.price}"
    return Alert(
        kind="price_dropped",
        contact_id=interest.contact_id,
        product_id=product.product_id,
        event_id=alert_event_id("price_dropped", interest.contact_id, product.product_id, change),
        occurred_at=max(product.updated_at, interest.seen_at),
        previous_price=reference,
        price=product.price,
        currency=product.currency,
        drop_percent=drop,
    )


def _live(interest: Interest, product: ProductState, now: datetime, window: timedelta) -> bool:
    return (
        not product.deleted
        and product.available
        and interest.product_id == product.product_id
        and interest.seen_at >= now - window
    )


def derive_alerts(
    interests: Iterable[Interest],
    products: Mapping[str, ProductState],
    now: datetime,
    *,
    window: timedelta = DEFAULT_WINDOW,
    drop_percent: Decimal | None = DEFAULT_DROP_PERCENT,
    restock: bool = True,
) -> list[Alert]:
    """Every alert the interests are owed by the products' current state, at most one per
    interest: back in stock first (a product back, and cheaper, is news of its return).
    ``drop_percent`` None (no workflow reacts to price drops) or ``restock`` False (none to
    restocks) derives none of that kind."""
    alerts: list[Alert] = []
    for interest in interests:
        product = products.get(interest.product_id)
        if product is None:
            continue
        alert = back_in_stock(interest, product, now, window) if restock else None
        if alert is None and drop_percent is not None:
            alert = price_dropped(interest, product, now, window, drop_percent)
        if alert is not None:
            alerts.append(alert)
    return alerts
