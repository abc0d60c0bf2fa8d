"""Events that name a product by id take what they leave out from the catalog.

A shop's cart, order and view events may send only ``product_id`` (and quantity): the name,
price, link and image then come from the catalog as it is when the event is ingested, and
are kept with the event, so a reminder shows what the shopper saw even if the product
changes later. What the event gives always wins. A required field (a line's name and unit
price, a viewed product's or recommendation's name) that neither the event nor the catalog
has rejects the event, naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from remarket_mailer.db.catalog import ProductFacts
from remarket_mailer.errors import ValidationError
from remarket_mailer.schemas import (
    AnyEvent,
    CartUpdated,
    CheckoutStarted,
    LineItem,
    OrderPlaced,
    ProductRef,
    ProductViewed,
)


def product_ids(event: AnyEvent) -> set[str]:
    """The product ids ``event`` would need the catalog for."""
    wanted: set[str] = set()
    if isinstance(event, CartUpdated | CheckoutStarted | OrderPlaced):
        wanted |= {i.product_id for i in event.items if i.product_id and _incomplete(i)}
    if isinstance(event, OrderPlaced):
        wanted |= {r.product_id for r in event.recommendations if r.name is None}
    if isinstance(event, ProductViewed) and event.name is None:
        wanted.add(event.product_id)
    return wanted


def _incomplete(item: LineItem) -> bool:
    return item.name is None or item.unit_price is None or item.image_url is None


def enrich(event: AnyEvent, catalog: Mapping[str, ProductFacts]) -> AnyEvent:
    """``event`` with what it left out taken from ``catalog``; raises ValidationError."""
    if isinstance(event, CartUpdated | CheckoutStarted | OrderPlaced):
        items = [_line(item, catalog, f"items[{n}]") for n, item in enumerate(event.items)]
        changes: dict[str, Any] = {"items": items}
        if isinstance(event, OrderPlaced):
            changes["recommendations"] = [
                _reference(ref, catalog, f"recommendations[{n}]")
                for n, ref in enumerate(event.recommendations)
            ]
        return event.model_copy(update=changes)
    if isinstance(event, ProductViewed) and event.name is None:
        product = _found(catalog, event.product_id, "name")
        return _with(
            event,
            {
                "name": product.title,
                "url": event.url or product.url,
                "image_url": event.image_url or product.image_url,
                "price": event.price if event.price is not None else product.price,
                "currency": event.currency or product.currency,
                "category": event.category or product.category,
            },
        )
    return event


def _line(item: LineItem, catalog: Mapping[str, ProductFacts], where: str) -> LineItem:
    if not _incomplete(item):
        return item
    product = catalog.get(item.product_id) if item.product_id else None
    if product is None:
        for name in ("name", "unit_price"):
            if getattr(item, name) is None:
                raise _missing(f"{where}.{name}", item.product_id)
        return item
    price = item.unit_price if item.unit_price is not None else product.price
    if price is None:
        raise _missing(f"{where}.unit_price", item.product_id)
    return _with(
        item,
        {
            "name": item.name or product.title,
            "unit_price": price,
            "url": item.url or product.url,
            "image_url": item.image_url or product.image_url,
        },
    )


def _reference(ref: ProductRef, catalog: Mapping[str, ProductFacts], where: str) -> ProductRef:
    if ref.name is not None:
        return ref
    product = _found(catalog, ref.product_id, f"{where}.name")
    return _with(
        ref,
        {
            "name": product.title,
            "url": ref.url or product.url,
            "image_url": ref.image_url or product.image_url,
            "price": ref.price if ref.price is not None else product.price,
        },
    )


M = TypeVar("M", bound=BaseModel)


def _with(model: M, changes: Mapping[str, Any]) -> M:
    """``model`` with ``changes``, validated again (the catalog's strings become URLs)."""
    return type(model).model_validate({**model.model_dump(), **changes})


def _found(catalog: Mapping[str, ProductFacts], product_id: str, field: str) -> ProductFacts:
    product = catalog.get(product_id)
    if product is None:
        raise _missing(field, product_id)
    return product


def _missing(field: str, product_id: str | None) -> ValidationError:
    if product_id is None:
        return ValidationError(
            f"{field}: required (or give product_id of a product in the catalog)", field
        )
    return ValidationError(
        f"{field}: not given, and product {product_id!r} is not in the catalog", field
    )
