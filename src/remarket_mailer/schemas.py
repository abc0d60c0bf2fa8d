"""The public event contract: one typed pydantic model per event type.

Every event has ``event_id`` (client-chosen, unique: a replay is a no-op), ``type``,
``occurred_at`` (RFC 3339 with an offset) and ``contact`` (``external_id`` and/or ``email``).
Money is a decimal string, never a float; currencies are ISO 4217; time zones are IANA names.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, available_timezones

from babel.numbers import list_currencies
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    TypeAdapter,
    model_validator,
)
from typing_extensions import TypeIs

from remarket_mailer.domain.emails import normalize_email

_CURRENCIES = frozenset(list_currencies())
_ZONES = frozenset(available_timezones())


def _email(value: str) -> str:
    try:
        return _normalized_email(value)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None


@lru_cache(maxsize=16_384)
def _normalized_email(value: str) -> str:
    # The same shoppers send event after event: validating an address costs ~60 us.
    return normalize_email(validate_email(value, check_deliverability=False).normalized)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _id(value: str) -> str:
    # Python's strip() also takes the separators U+001C-U+001F that pydantic's does not, and
    # PostgreSQL refuses NUL in text: an id is printable, or it is refused here.
    value = value.strip()
    if not value:
        raise ValueError("an id must not be empty or only blanks")
    if _CONTROL.search(value):
        raise ValueError("an id must not contain control characters")
    return value


def _currency(value: str) -> str:
    if value not in _CURRENCIES:
        raise ValueError(f"{value!r} is not an ISO 4217 currency code")
    return value


def _timezone(value: str) -> str:
    if value not in _ZONES:
        raise ValueError(f"{value!r} is not an IANA time zone such as 'Europe/Amsterdam'")
    ZoneInfo(value)
    return value


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError('money must be a decimal string like "19.99", not a JSON number')
    return value


# Dates far outside any shop's life are typos or probes: 9999-12-31T23:59:59-14:00 cannot even be
# converted to UTC, and year 1 breaks date arithmetic. The bounds leave room for renewals.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _in_range(value: datetime) -> datetime:
    try:
        ok = _EARLIEST <= value < _LATEST
    except OverflowError:
        ok = False
    if not ok:
        raise ValueError("must be a date between 1970 and 2199")
    return value


def _first_nul(value: Any) -> str | None:
    """The path of the first string (key or value) in ``value`` holding a NUL, else None.
    Iterative: the body's depth was already bounded, but no recursion is needed at all."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path or "(body)"
        elif isinstance(item, dict):
            for key, child in item.items():
                where = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and "\x00" in key:
                    return where
                stack.append((child, where))
        elif isinstance(item, list):
            stack.extend((child, f"{path}.{i}") for i, child in enumerate(item))
    return None


Email = Annotated[str, StringConstraints(max_length=320), AfterValidator(_email)]
Timestamp = Annotated[AwareDatetime, AfterValidator(_in_range)]
Currency = Annotated[str, StringConstraints(min_length=3, max_length=3), AfterValidator(_currency)]
TimeZone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_timezone)]
Money = Annotated[
    Decimal,
    BeforeValidator(_no_float),
    Field(ge=0, max_digits=14, decimal_places=2, allow_inf_nan=False),
]
Id = Annotated[
    str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True), AfterValidator(_id)
]
Name = Annotated[str, StringConstraints(max_length=255)]
Url = Annotated[HttpUrl, Field(max_length=2048)]
# BCP 47 tags fit in 35 characters (RFC 5646 section 4.4.1), as does the column.
Locale = Annotated[
    str,
    StringConstraints(max_length=35, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$"),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContactRef(_Model):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"anyOf": [{"required": ["external_id"]}, {"required": ["email"]}]},
    )

    external_id: Id | None = None
    email: Email | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ContactRef:
        if self.external_id is None and self.email is None:
            raise ValueError("give contact.external_id or contact.email (or both)")
        return self


_FROM_CATALOG = "Omit it to take it from the catalog (by product_id)."


class LineItem(_Model):
    sku: Name | None = None
    product_id: Id | None = None
    name: Name | None = Field(default=None, description=f"Required. {_FROM_CATALOG}")
    quantity: int = Field(ge=1, le=100_000)
    unit_price: Money | None = Field(default=None, description=f"Required. {_FROM_CATALOG}")
    url: Url | None = None
    image_url: Url | None = None


class ProductRef(_Model):
    product_id: Id
    name: Name | None = Field(default=None, description=f"Required. {_FROM_CATALOG}")
    url: Url | None = None
    image_url: Url | None = None
    price: Money | None = None


class _NoNul(_Model):
    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        # PostgreSQL stores no NUL in text or JSON: refuse it here, naming the field, rather
        # than fail the insert.
        where = _first_nul(data)
        if where is not None:
            raise ValueError(f"{where}: text must not contain the NUL character (\\u0000)")
        return data


class _Event(_NoNul):
    event_id: Id
    occurred_at: Timestamp
    contact: ContactRef


class ContactUpserted(_Event):
    type: Literal["contact.upserted"]
    first_name: Name | None = None
    last_name: Name | None = None
    locale: Locale | None = None
    timezone: TimeZone | None = None
    attributes: dict[Annotated[str, StringConstraints(max_length=64)], Any] = Field(
        default_factory=dict, max_length=100
    )


class ConsentChanged(_Event):
    type: Literal["consent.changed"]
    topic: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = "marketing"
    status: Literal["granted", "withdrawn"]
    source: Name | None = None
    evidence: Annotated[str, StringConstraints(max_length=4000)] | None = None


class _CartBody(_Model):
    cart_id: Id
    items: list[LineItem] = Field(default_factory=list, max_length=500)
    currency: Currency
    total: Money
    checkout_url: Url | None = None


class CartUpdated(_Event, _CartBody):
    type: Literal["cart.updated"]


class CheckoutStarted(_Event, _CartBody):
    type: Literal["checkout.started"]


class CartEmptied(_Event):
    type: Literal["cart.emptied"]
    cart_id: Id


class OrderPlaced(_Event):
    type: Literal["order.placed"]
    order_id: Id
    cart_id: Id | None = None
    items: list[LineItem] = Field(default_factory=list, max_length=500)
    currency: Currency
    total: Money
    discount_codes: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        default_factory=list, max_length=20
    )
    recommendations: list[ProductRef] = Field(
        default_factory=list,
        max_length=20,
        description="Complementary products for the post-purchase email (from your shop's "
        "recommendation engine); items just bought are never shown.",
    )


class ProductViewed(_Event):
    type: Literal["product.viewed"]
    product_id: Id
    name: Name | None = Field(default=None, description=f"Required. {_FROM_CATALOG}")
    url: Url | None = None
    image_url: Url | None = None
    price: Money | None = None
    currency: Currency | None = None
    category: Name | None = None


class _ProductAlert(_Event):
    product_id: Id
    name: Name
    url: Url | None = None
    image_url: Url | None = None
    price: Money | None = None
    compare_at_price: Money | None = None
    currency: Currency | None = None
    category: Name | None = None


class ProductBackInStock(_ProductAlert):
    """A product the contact viewed or carted while it was out of stock (or that sold out
    after) is available again. Derived from the catalog by the alert job (docs/catalog.md);
    a shop may send its own."""

    type: Literal["product.back_in_stock"]


class ProductPriceDropped(_ProductAlert):
    """A product the contact viewed or carted now costs at least a few percent less than
    what they saw. Derived from the catalog by the alert job; a shop may send its own."""

    type: Literal["product.price_dropped"]
    previous_price: Money = Field(description="What the contact saw (or was last told).")
    drop_percent: Decimal = Field(ge=0, le=100, max_digits=5, decimal_places=2)


class SubscriptionUpserted(_Event):
    type: Literal["subscription.upserted"]
    subscription_id: Id
    plan: Name | None = None
    status: Literal["active", "trialing", "past_due", "paused", "cancelled"] = "active"
    renews_at: Timestamp | None = None
    price: Money | None = None
    currency: Currency | None = None


class SubscriptionRenewed(_Event):
    type: Literal["subscription.renewed"]
    subscription_id: Id
    renews_at: Timestamp | None = None


class SubscriptionCancelled(_Event):
    type: Literal["subscription.cancelled"]
    subscription_id: Id


class ContactUnsubscribed(_Event):
    type: Literal["contact.unsubscribed"]
    topic: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")] | None = None
    """None: from everything (the address is suppressed). A topic: consent withdrawn for it."""
    source: Name | None = None


_ContactEvent = (
    ContactUpserted
    | ConsentChanged
    | CartUpdated
    | CheckoutStarted
    | CartEmptied
    | OrderPlaced
    | ProductViewed
    | ProductBackInStock
    | ProductPriceDropped
    | SubscriptionUpserted
    | SubscriptionRenewed
    | SubscriptionCancelled
    | ContactUnsubscribed
)
AnyEvent = Annotated[_ContactEvent, Field(discriminator="type")]
"""An event about a contact: it goes through consent, exits and triggers."""


# --- the catalog ------------------------------------------------------------------------------


class ProductVariant(_Model):
    variant_id: Id
    title: Name | None = None
    sku: Name | None = None
    price: Money | None = None
    compare_at_price: Money | None = None
    available: bool = True
    inventory: int | None = Field(default=None, ge=-1_000_000_000, le=1_000_000_000)


class _CatalogEvent(_NoNul):
    """About the shop's catalog, not a contact: no ``contact``."""

    event_id: Id
    occurred_at: Timestamp


class ProductUpserted(_CatalogEvent):
    type: Literal["product.upserted"]
    product_id: Id
    title: Name
    url: Url | None = None
    image_url: Url | None = None
    price: Money | None = None
    compare_at_price: Money | None = Field(
        default=None, description="The price before a sale (shown struck through)."
    )
    currency: Currency | None = None
    category: Name | None = None
    tags: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        default_factory=list, max_length=100
    )
    available: bool = Field(
        default=True,
        description="False: out of stock (never recommended; a back-in-stock reminder waits).",
    )
    inventory: int | None = Field(default=None, ge=-1_000_000_000, le=1_000_000_000)
    variants: list[ProductVariant] = Field(default_factory=list, max_length=250)


class ProductDeleted(_CatalogEvent):
    type: Literal["product.deleted"]
    product_id: Id


CatalogEvent = Annotated[ProductUpserted | ProductDeleted, Field(discriminator="type")]
CATALOG_EVENT_TYPES = frozenset({"product.upserted", "product.deleted"})

IncomingEvent = Annotated[
    _ContactEvent | ProductUpserted | ProductDeleted, Field(discriminator="type")
]
"""Anything ``POST /v1/events`` accepts: a contact's event or a catalog change."""

EVENT_ADAPTER: TypeAdapter[IncomingEvent] = TypeAdapter(IncomingEvent)


def parse_event(data: Any) -> IncomingEvent:
    """Validate one event (a dict from JSON); raises pydantic.ValidationError."""
    return EVENT_ADAPTER.validate_python(data)


def is_catalog_event(event: IncomingEvent) -> TypeIs[ProductUpserted | ProductDeleted]:
    return event.type in CATALOG_EVENT_TYPES
