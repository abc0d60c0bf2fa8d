"""What an event says about the contact and its carts, orders and subscriptions.

The newest ``occurred_at`` wins everywhere: an older event (a late webhook) only fills
fields that are still empty, and never undoes a newer one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from remarket_mailer.db import commerce as commerce_db
from remarket_mailer.db import consent as consent_db
from remarket_mailer.db.commerce import CartRow
from remarket_mailer.db.contacts import ContactRow
from remarket_mailer.schemas import (
    AnyEvent,
    CartEmptied,
    CartUpdated,
    CheckoutStarted,
    ConsentChanged,
    ContactUnsubscribed,
    ContactUpserted,
    OrderPlaced,
    SubscriptionCancelled,
    SubscriptionRenewed,
    SubscriptionUpserted,
)
from remarket_mailer.services.discounts import redeem_in_session
from remarket_mailer.services.ingest.batch import Batch
from remarket_mailer.services.suppression import suppress_contact

log = logging.getLogger(__name__)


@dataclass
class Facts:
    may_trigger: bool = True
    cart: CartRow | None = None


def apply_facts(batch: Batch, contact: ContactRow, event: AnyEvent) -> Facts:
    """Upsert contact/cart/order/subscription facts; the newest occurred_at wins."""
    facts = Facts()
    if isinstance(event, ContactUpserted):
        _upsert_profile(batch, contact, event)
    elif isinstance(event, ConsentChanged):
        consent_db.record_consent(
            batch.session,
            contact_id=contact.id,
            topic=event.topic,
            status=event.status,
            source=event.source,
            evidence=event.evidence,
            # A stamp ahead of us counts as now (domain.consent).
            occurred_at=min(event.occurred_at, batch.now),
            recorded_at=batch.now,
        )
    elif isinstance(event, ContactUnsubscribed):
        _unsubscribe(batch, contact, event)
    elif isinstance(event, CartUpdated | CheckoutStarted):
        facts.cart = _upsert_cart(batch, contact, event)
        facts.may_trigger = facts.cart.ordered_at is None and facts.cart.updated_at == (
            event.occurred_at
        )
    elif isinstance(event, CartEmptied):
        cart = batch.carts.get(event.cart_id)
        at = event.occurred_at
        if cart is not None and (cart.emptied_at is None or cart.emptied_at < at):
            cart.emptied_at = at
    elif isinstance(event, OrderPlaced):
        _record_order(batch, contact, event)
    elif isinstance(event, SubscriptionUpserted | SubscriptionRenewed | SubscriptionCancelled):
        _upsert_subscription(batch, contact, event)
    return facts


def _upsert_profile(batch: Batch, contact: ContactRow, event: ContactUpserted) -> None:
    # The newest occurred_at wins, as for carts: an older event (a late webhook) only
    # fills fields that are still empty. Stamps ahead of our clock count as now.
    at = event.occurred_at
    newer = contact.profile_updated_at is None or at >= contact.profile_updated_at
    for name in ("first_name", "last_name", "locale", "timezone"):
        value = getattr(event, name)
        if value is not None and (newer or getattr(contact, name) is None):
            setattr(contact, name, value)
    if event.attributes:
        older, newest = (
            (contact.attributes, event.attributes)
            if newer
            else (event.attributes, contact.attributes)
        )
        contact.attributes = {**older, **newest}
    if newer:
        contact.profile_updated_at = min(at, batch.now)
    contact.updated_at = batch.now


def _unsubscribe(batch: Batch, contact: ContactRow, event: ContactUnsubscribed) -> None:
    session, now = batch.session, batch.now
    if event.topic is None:
        suppress_contact(session, contact.email, contact.id, "unsubscribed", event.source, now)
        return
    consent_db.record_consent(
        session,
        contact_id=contact.id,
        topic=event.topic,
        status="withdrawn",
        source=event.source or "contact.unsubscribed",
        occurred_at=min(event.occurred_at, now),
        recorded_at=now,
    )


def _items(items: Any) -> dict[str, Any]:
    return {"items": [json.loads(item.model_dump_json()) for item in items]}


def _cart(batch: Batch, cart_id: str, contact: ContactRow) -> CartRow:
    cart = batch.carts.get(cart_id)
    if cart is None:
        cart = commerce_db.new_cart(cart_id, contact.id)
        batch.new_carts.append(cart)
        batch.carts[cart_id] = cart
    return cart


def _upsert_cart(
    batch: Batch, contact: ContactRow, event: CartUpdated | CheckoutStarted
) -> CartRow:
    cart = _cart(batch, event.cart_id, contact)
    if cart.updated_at is None or event.occurred_at >= cart.updated_at:
        cart.contact_id = contact.id
        cart.currency = event.currency
        cart.total = event.total
        cart.items = _items(event.items)
        cart.checkout_url = str(event.checkout_url) if event.checkout_url else None
        cart.updated_at = event.occurred_at
        if cart.emptied_at is not None and cart.emptied_at < event.occurred_at:
            cart.emptied_at = None
    return cart


def _record_order(batch: Batch, contact: ContactRow, event: OrderPlaced) -> None:
    session = batch.session
    if event.order_id not in batch.known_orders:
        batch.known_orders.add(event.order_id)
        commerce_db.add_order(
            session,
            order_id=event.order_id,
            contact_id=contact.id,
            cart_id=event.cart_id,
            currency=event.currency,
            total=event.total,
            items=_items(event.items),
            discount_codes=event.discount_codes,
            placed_at=event.occurred_at,
        )
        batch.baskets.append([i.product_id for i in event.items if i.product_id])
        for code in event.discount_codes:
            outcome = redeem_in_session(
                session,
                code,
                order_id=event.order_id,
                contact_id=contact.id,
                now=event.occurred_at,
            )
            if not outcome.redeemed and outcome.reason != "unknown":
                log.warning(
                    "order=%s used discount code refused: %s", event.order_id, outcome.reason
                )
    if contact.first_order_at is None or event.occurred_at < contact.first_order_at:
        contact.first_order_at = event.occurred_at
    if event.cart_id:
        # The order can arrive before the cart event it converts: remember it, so the late
        # cart.updated does not start reminders for a cart that was already bought.
        cart = _cart(batch, event.cart_id, contact)
        if cart.ordered_at is None or event.occurred_at < cart.ordered_at:
            cart.ordered_at = event.occurred_at
            cart.order_id = event.order_id


def _upsert_subscription(
    batch: Batch,
    contact: ContactRow,
    event: SubscriptionUpserted | SubscriptionRenewed | SubscriptionCancelled,
) -> None:
    sub = batch.subscriptions.get(event.subscription_id)
    if sub is None:
        sub = commerce_db.add_subscription(batch.session, event.subscription_id, contact.id)
        batch.subscriptions[event.subscription_id] = sub
    if sub.updated_at is not None and event.occurred_at < sub.updated_at:
        return
    sub.updated_at = event.occurred_at
    if isinstance(event, SubscriptionUpserted):
        sub.plan, sub.status, sub.renews_at = event.plan, event.status, event.renews_at
        sub.price, sub.currency = event.price, event.currency
    elif isinstance(event, SubscriptionRenewed):
        sub.status = "active"
        if event.renews_at is not None:
            sub.renews_at = event.renews_at
    else:
        sub.status = "cancelled"
