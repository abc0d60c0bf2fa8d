"""The one context that trigger filters, exit conditions, step conditions and templates see.

Built here and nowhere else, so a name that works in one place works in all of them:
``contact.is_customer`` in a trigger filter and in a step ``condition``, ``contact.last_name``
in a filter and in a template. Sending adds what only exists at send time (shop, discount,
links, workflow and step) on top of the same base.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol


class ContactLike(Protocol):
    """A contact: the ORM row ingest holds, or the plain row sending reads."""

    @property
    def email(self) -> str | None: ...
    @property
    def first_name(self) -> str | None: ...
    @property
    def last_name(self) -> str | None: ...
    @property
    def locale(self) -> str | None: ...
    @property
    def timezone(self) -> str | None: ...
    @property
    def attributes(self) -> dict[str, Any]: ...
    @property
    def first_order_at(self) -> datetime | None: ...


class CartLike(Protocol):
    """A cart: the ORM row ingest holds, or the plain row sending reads."""

    @property
    def cart_id(self) -> str: ...
    @property
    def items(self) -> dict[str, Any] | None: ...
    @property
    def currency(self) -> str | None: ...
    @property
    def total(self) -> Decimal | None: ...
    @property
    def checkout_url(self) -> str | None: ...


def contact_view(contact: ContactLike) -> dict[str, Any]:
    """A contact as expressions and templates see it."""
    return {
        "email": contact.email,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "locale": contact.locale,
        "timezone": contact.timezone,
        "attributes": contact.attributes,
        "is_customer": contact.first_order_at is not None,
    }


def cart_view(cart: CartLike) -> dict[str, Any]:
    """A cart as expressions and templates see it (money as Decimal)."""
    return {
        "id": cart.cart_id,
        "items": list((cart.items or {}).get("items", [])),
        "currency": cart.currency,
        "total": cart.total if cart.total is not None else Decimal(0),
        "checkout_url": cart.checkout_url,
    }


def workflow_context(
    contact: ContactLike,
    event: Mapping[str, Any],
    cart: CartLike | None,
    **send_time: Any,
) -> dict[str, Any]:
    """The context for ``contact``, the ``event`` (as JSON-like data) and the cart if any.

    ``send_time`` adds the names only sending has (``shop``, ``discount``, ``links``,
    ``workflow``, ``step``); it cannot replace ``contact``, ``event`` or ``cart``."""
    base: dict[str, Any] = {
        "event": event,
        "contact": contact_view(contact),
        "cart": cart_view(cart) if cart is not None else None,
    }
    clash = base.keys() & send_time.keys()
    if clash:
        raise TypeError(f"workflow_context: {sorted(clash)} are built here, not passed in")
    return {**send_time, **base}
