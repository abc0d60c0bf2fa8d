"""Shopify's product webhooks as catalog events: ``products/create`` and ``products/update``
→ ``product.upserted`` (price, availability, first image, variants), ``products/delete`` →
``product.deleted``. Signatures and event ids as in ``shopify.py``, which routes the topics here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from remarket_mailer.integrations import common

if TYPE_CHECKING:
    from remarket_mailer.integrations.shopify import Delivery


def product(payload: Mapping[str, Any], delivery: Delivery) -> list[dict[str, Any]]:
    """A product as Shopify's product resource has it: price and compare-at price of the
    first variant; available when active and some variant can be sold (in stock, not
    tracked, or sold when out of stock); the first image (Shopify's sample payloads give
    protocol-relative ``//cdn.shopify.com/...`` sources)."""
    product_id = common.required_identifier(payload, "id", f"shopify {delivery.topic}")
    stamps = ("updated_at", "published_at", "created_at")
    variants = [
        _variant(common.as_mapping(raw, f"variants[{index}]"), f"variants[{index}]")
        for index, raw in enumerate(common.as_list(payload.get("variants"), "variants"))
    ]
    handle = common.text(payload.get("handle"))
    link = None
    if handle and delivery.storefront:
        link = common.url(f"{delivery.storefront.rstrip('/')}/products/{quote(handle)}")
    active = str(payload.get("status") or "active").lower() == "active"
    first = variants[0] if variants else {}
    event = {
        "event_id": delivery.event_id("product.upserted", product_id, payload, *stamps),
        "type": "product.upserted",
        "occurred_at": delivery.occurred_at(payload, *stamps),
        "product_id": product_id,
        "title": common.text(payload.get("title")),
        "url": link,
        "image_url": _image(payload),
        "price": first.get("price"),
        "compare_at_price": first.get("compare_at_price"),
        "category": common.text(payload.get("product_type")),
        "tags": [t.strip()[:64] for t in str(payload.get("tags") or "").split(",") if t.strip()],
        "available": active and any(v["available"] for v in variants),
        "variants": variants,
    }
    return [common.compact(event)]


def _variant(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    quantity = raw.get("inventory_quantity")
    tracked = raw.get("inventory_management") is not None
    sellable = (
        not tracked
        or raw.get("inventory_policy") == "continue"
        or (isinstance(quantity, int) and quantity > 0)
    )
    compare = raw.get("compare_at_price")
    return common.compact(
        {
            "variant_id": common.required_identifier(raw, "id", f"shopify {where}"),
            "title": common.text(raw.get("title")),
            "sku": common.text(raw.get("sku")),
            "price": common.money(raw.get("price"), f"{where}.price"),
            "compare_at_price": common.money(compare, f"{where}.compare_at_price")
            if compare not in (None, "")
            else None,
            "available": sellable,
            "inventory": quantity if tracked and isinstance(quantity, int) else None,
        }
    )


def _image(payload: Mapping[str, Any]) -> str | None:
    images = payload.get("images")
    candidates = [payload.get("image"), *(images if isinstance(images, list) else [])]
    for image in candidates:
        source = image.get("src") if isinstance(image, Mapping) else None
        if isinstance(source, str) and source.startswith("//"):
            source = "https:" + source
        found = common.url(source)
        if found:
            return found
    return None


def product_deleted(payload: Mapping[str, Any], delivery: Delivery) -> list[dict[str, Any]]:
    product_id = common.required_identifier(payload, "id", f"shopify {delivery.topic}")
    return [
        {
            "event_id": delivery.event_id("product.deleted", product_id, payload),
            "type": "product.deleted",
            "occurred_at": delivery.occurred_at(payload, "deleted_at"),
            "product_id": product_id,
        }
    ]
