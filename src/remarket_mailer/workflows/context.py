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


MONEY_FIELDS: frozenset[str] = frozenset(
    {"total", "price", "unit_price", "compare_at_price", "previous_price", "drop_percent"}
)
"""The event fields that hold money (``schemas.Money``), and a price drop's percentage (also a
decimal). Events arrive and are stored as JSON,
where money is a string ("74.50") so no float touches it; expressions compare it with numbers
(``event.total >= 100``), so the view turns it back into Decimal. A test keeps this list equal
to the schema's Money fields."""


def event_view(event: Mapping[str, Any]) -> dict[str, Any]:
    """An event as expressions and templates see it: its JSON, money as Decimal (in line
    items and recommendations too)."""
    return {key: _money(key, value) for key, value in event.items()}


_SCALARS = frozenset({int, float, bool, type(None)})


def _money(key: str, value: Any) -> Any:
    # Strings first and dicts by exact type: every value of every event passes here (~30 an
    # email), and isinstance against the Mapping ABC costs several times a type check.
    if isinstance(value, str):
        if key not in MONEY_FIELDS:
            return value
        try:
            return Decimal(value)
        except ArithmeticError:  # decimal.InvalidOperation: not a number, leave it as sent
            return value
    if type(value) in _SCALARS:
        return value
    if type(value) is dict or isinstance(value, Mapping):
        return event_view(value)
    if isinstance(value, list):
        return [event_view(v) if type(v) is dict or isinstance(v, Mapping) else v for v in value]
    return value


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
        "event": event_view(event),
        "contact": contact_view(contact),
        "cart": cart_view(cart) if cart is not None else None,
    }
    clash = base.keys() & send_time.keys()
    if clash:
        raise TypeError(f"workflow_context: {sorted(clash)} are built here, not passed in")
    return {**send_time, **base}
