"""Carts, orders, subscriptions and events: the shop facts ingest updates and sending reads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    bindparam,
    select,
)
from sqlalchemy.orm import Session

from remarket_mailer.db.models import (
    Cart,
    Enrollment,
    Event,
    Order,
    Subscription,
)
from remarket_mailer.db.sql import in_ids, insert_new, insert_rows

CartRow = Cart
"""A cart as ingest holds it while a batch applies (built with ``new_cart``)."""

SubscriptionRow = Subscription
"""A subscription as ingest holds it while a batch applies (built with ``add_subscription``)."""


@dataclass(frozen=True, slots=True)
class CartFacts:
    """What sending reads of a cart (a plain row, not an ORM object)."""

    cart_id: str
    currency: str | None
    total: Decimal | None
    items: dict[str, Any]
    checkout_url: str | None


def carts_of_enrollments(session: Session, enrollment_ids: Iterable[int]) -> dict[str, CartFacts]:
    """cart id → the cart, for enrollments keyed by cart id (joined on the key: the ids that
    go in are integers, not a list of strings to bind one by one)."""
    ids = set(enrollment_ids)
    if not ids:
        return {}
    rows = session.connection().execute(
        select(Cart.cart_id, Cart.currency, Cart.total, Cart.items, Cart.checkout_url)
        .join(Enrollment, Enrollment.key == Cart.cart_id)
        .where(in_ids(session, Enrollment.id, "ids", ids))
    )
    return {row[0]: CartFacts(*row) for row in rows.all()}


@dataclass(frozen=True, slots=True)
class SubscriptionFacts:
    """What sending reads of a subscription, as it is now."""

    subscription_id: str
    plan: str | None
    status: str | None
    price: Decimal | None
    currency: str | None


def subscription_facts_by_id(
    session: Session, subscription_ids: Iterable[str]
) -> dict[str, SubscriptionFacts]:
    ids = list(set(subscription_ids))
    if not ids:
        return {}
    rows = session.connection().execute(
        select(
            Subscription.subscription_id,
            Subscription.plan,
            Subscription.status,
            Subscription.price,
            Subscription.currency,
        ).where(Subscription.subscription_id.in_(ids))
    )
    return {row[0]: SubscriptionFacts(*row) for row in rows.all()}


def subscriptions_by_id(session: Session, ids: Iterable[str]) -> dict[str, Subscription]:
    ids = set(ids)
    if not ids:
        return {}
    rows = session.scalars(select(Subscription).where(Subscription.subscription_id.in_(ids)))
    return {s.subscription_id: s for s in rows}


def orders_by_id(session: Session, ids: Iterable[str]) -> dict[str, Order]:
    ids = set(ids)
    if not ids:
        return {}
    return {o.order_id: o for o in session.scalars(select(Order).where(Order.order_id.in_(ids)))}


# The ingest prefetch runs for every request, often for a single event: its statements are
# built once (building a select costs more than PostgreSQL takes to answer it) and, where no
# ORM object is wanted, run on the connection, which skips the ORM's execution path.
_EVENT_HASHES = select(Event.event_id, Event.body_hash).where(
    Event.event_id.in_(bindparam("ids", expanding=True))
)


_CARTS_FOR_UPDATE = (
    select(Cart)
    .where(Cart.cart_id.in_(bindparam("ids", expanding=True)))
    .order_by(Cart.cart_id)
    .with_for_update()
)


def event_hashes(session: Session, event_ids: Iterable[str]) -> dict[str, str]:
    ids = list(set(event_ids))
    if not ids:
        return {}
    rows = session.connection().execute(_EVENT_HASHES, {"ids": ids})
    return {str(row[0]): str(row[1]) for row in rows}


def carts_for_update(session: Session, cart_ids: Iterable[str]) -> dict[str, Cart]:
    ids = sorted(set(cart_ids))
    if not ids:
        return {}
    return {c.cart_id: c for c in session.scalars(_CARTS_FOR_UPDATE, {"ids": ids})}


def new_cart(cart_id: str, contact_id: int) -> Cart:
    """A cart an event names for the first time, not yet written: ingest keeps it in its batch
    and writes its new carts together with ``insert_carts``."""
    return Cart(cart_id=cart_id, contact_id=contact_id, items={})


def insert_carts(session: Session, carts: Sequence[Cart]) -> None:
    """INSERT the carts built with ``new_cart``, one statement."""
    insert_new(session, Cart, carts)


def add_subscription(session: Session, subscription_id: str, contact_id: int) -> Subscription:
    """A subscription an event names for the first time, added to the session (the batch's
    flush writes it with what the event sets)."""
    subscription = Subscription(subscription_id=subscription_id, contact_id=contact_id)
    session.add(subscription)
    return subscription


def add_order(
    session: Session,
    *,
    order_id: str,
    contact_id: int,
    cart_id: str | None,
    currency: str | None,
    total: Decimal | None,
    items: dict[str, Any],
    discount_codes: Sequence[str],
    placed_at: datetime,
) -> None:
    """Record an order the shop reported (written by the batch's flush)."""
    session.add(
        Order(
            order_id=order_id,
            contact_id=contact_id,
            cart_id=cart_id,
            currency=currency,
            total=total,
            items=items,
            discount_codes={"codes": list(discount_codes)},
            placed_at=placed_at,
        )
    )


def event_row(
    *,
    event_id: str,
    type: str,
    occurred_at: datetime,
    received_at: datetime,
    contact_id: int | None,
    body_hash: str,
    payload: dict[str, Any],
) -> dict[str, Any]:
    """An accepted event as a plain row for ``insert_events``."""
    return {
        "event_id": event_id,
        "type": type,
        "occurred_at": occurred_at,
        "received_at": received_at,
        "contact_id": contact_id,
        "body_hash": body_hash,
        "payload": payload,
    }


def insert_events(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT the batch's events (``event_row``), one statement (COPY when many)."""
    insert_rows(session, Event, rows)
