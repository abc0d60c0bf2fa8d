"""WooCommerce webhooks: verify the HMAC, spot the ping, map a delivery onto our event types.

- ``order.created``, ``order.updated`` in status ``pending`` or ``checkout-draft`` →
  ``checkout.started`` (cart_id = ``order_key``, checkout_url =
  ``payment_url`` when the payload has one).
- ``order.created``, ``order.updated`` in status ``processing`` or ``completed`` →
  ``order.placed`` (order_id = ``id``, cart_id = ``order_key``, so it closes the checkout
  above; discount codes from ``coupon_lines[].code``).
- Orders in any other status (``on-hold``: the customer chose bank transfer or a cheque and
  has not abandoned anything; ``cancelled``, ``refunded``, ``failed``, ``trash``…) → nothing.
- ``customer.created``, ``customer.updated`` → ``contact.upserted``.
- ``product.created``, ``product.updated``, ``product.restored`` → ``product.upserted``;
  ``product.deleted`` → ``product.deleted``.
- Anything else (other ``*.deleted``, coupons, ``action.*``) → nothing.

The contact is ``billing.email`` plus ``woocommerce:<customer_id>`` for registered customers
(``customer_id`` 0 is a guest). An order with neither maps to nothing. WooCommerce core has no
marketing-consent field, so no ``consent.changed`` is produced here.

``X-WC-Webhook-Delivery-ID`` is not unique (a hash of webhook id and the second), so
``event_id`` is ``woocommerce:<X-WC-Webhook-ID>:<topic>:<resource id>:<date_modified_gmt>:
<event type>``. ``*_gmt`` times carry no offset and are read as UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.message import Message
from html import unescape
from typing import Any
from urllib.parse import parse_qsl

from remarket_mailer.errors import ValidationError
from remarket_mailer.integrations import common

SIGNATURE_HEADER = "X-WC-Webhook-Signature"
TOPIC_HEADER = "X-WC-Webhook-Topic"

_CHECKOUT_STATUSES = frozenset({"pending", "checkout-draft"})
_PLACED_STATUSES = frozenset({"processing", "completed"})
_FORM_TYPE = "application/x-www-form-urlencoded"
_MAX_PING_BODY = 64


def verify_signature(raw_body: bytes, header_value: str | None, secrets: Sequence[str]) -> bool:
    """True when ``header_value`` (``X-WC-Webhook-Signature``) signs ``raw_body``.

    The signature is base64(HMAC-SHA256(raw body, webhook secret)). Pass every secret that
    may be in use so a rotation can overlap. Use the bytes as received. Never raises.
    """
    return common.verify_base64_hmac_sha256(raw_body, header_value, secrets)


def is_woocommerce_ping(content_type: str | None, raw_body: bytes) -> bool:
    """True for the unsigned ping WooCommerce sends when a webhook is saved.

    The ping is a form-encoded POST whose whole body is ``webhook_id=<digits>``. It carries no
    signature and no data: answer 200 and drop it (a non-200 shows an error in the shop admin).
    A missing Content-Type is tolerated; any other type than form encoding is not a ping.
    """
    if content_type:
        parsed = Message()
        parsed["content-type"] = content_type
        if parsed.get_content_type() != _FORM_TYPE:
            return False
    if len(raw_body) > _MAX_PING_BODY:
        return False
    try:
        fields = parse_qsl(raw_body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return False
    return (
        len(fields) == 1
        and fields[0][0] == "webhook_id"
        and fields[0][1].isascii()
        and fields[0][1].isdigit()
    )


def map_webhook(
    topic: str,
    payload: Mapping[str, Any],
    headers: Mapping[str, str],
    storefront: str | None = None,
) -> list[dict[str, Any]]:
    """Map one WooCommerce delivery onto zero or more of our event dicts.

    ``topic`` is the ``X-WC-Webhook-Topic`` value (``order.updated``), ``payload`` the parsed
    JSON body (the REST resource) and ``headers`` the request headers (any case). Every dict
    returned passes ``remarket_mailer.schemas.parse_event``. Unmapped topics give an empty list.

    Raises ValidationError (with ``field``) when the payload lacks what its topic requires,
    e.g. an order without ``id`` or ``status``, or carries a value of the wrong shape.
    ``storefront`` is unused: WooCommerce products carry their own ``permalink``.
    """
    del storefront
    return common.dispatch(topic, payload, headers, _HANDLERS, _Delivery)


@dataclass(frozen=True)
class _Delivery:
    topic: str
    headers: dict[str, str]

    def received_at(self) -> str:
        """Now, for a body that carries no time of its own."""
        return datetime.now(UTC).isoformat()

    def event_id(self, event_type: str, resource: str, modified: str) -> str:
        webhook_id = self.headers.get("x-wc-webhook-id") or "-"
        return common.event_id(
            "woocommerce", webhook_id, self.topic, resource, modified, event_type
        )


def _occurred_at(payload: Mapping[str, Any], topic: str) -> str:
    for key in ("date_modified_gmt", "date_created_gmt"):
        found = common.timestamp(payload.get(key), key)
        if found is not None:
            return found
    raise ValidationError(
        f"woocommerce {topic} payload has no date_modified_gmt", field="date_modified_gmt"
    )


def _external_id(value: Any) -> str | None:
    customer_id = common.identifier(value)
    if customer_id is None or customer_id == "0":
        return None
    return f"woocommerce:{customer_id}"


def _line_items(value: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for index, raw in enumerate(common.as_list(value, "line_items")):
        where = f"line_items[{index}]"
        line = common.as_mapping(raw, where)
        count = common.quantity(line.get("quantity"), f"{where}.quantity")
        if count < 1:
            continue
        price = line.get("price")
        if price is None:
            subtotal = Decimal(common.money(line.get("subtotal"), f"{where}.subtotal"))
            unit_price = common.money(str(subtotal / count), f"{where}.subtotal")
        else:
            unit_price = common.money(price, f"{where}.price")
        raw_name = line.get("name")
        # WooCommerce sends product titles HTML-escaped ("Ship Your Idea &ndash; Black").
        name = common.text(unescape(raw_name)) if isinstance(raw_name, str) else None
        image = line.get("image")
        product_id = common.identifier(line.get("product_id"))
        items.append(
            common.compact(
                {
                    "sku": common.text(line.get("sku")),
                    "product_id": None if product_id == "0" else product_id,
                    "name": name or "Item",
                    "quantity": count,
                    "unit_price": unit_price,
                    "image_url": common.url(image.get("src"))
                    if isinstance(image, Mapping)
                    else None,
                }
            )
        )
    return items[: common.MAX_ITEMS]


def _order(payload: Mapping[str, Any], delivery: _Delivery) -> list[dict[str, Any]]:
    what = f"woocommerce {delivery.topic}"
    order_id = common.required_identifier(payload, "id", what)
    raw_status = payload.get("status")
    if not isinstance(raw_status, str) or not raw_status.strip():
        raise ValidationError(f"{what} payload has no status", field="status")
    status = raw_status.strip().lower().removeprefix("wc-")
    if status not in _CHECKOUT_STATUSES and status not in _PLACED_STATUSES:
        return []
    billing = common.optional_mapping(payload.get("billing"), "billing") or {}
    contact = common.contact(
        _external_id(payload.get("customer_id")), common.email(billing.get("email"))
    )
    if contact is None:
        return []
    occurred_at = _occurred_at(payload, delivery.topic)
    common_fields: dict[str, Any] = {
        "occurred_at": occurred_at,
        "contact": contact,
        "items": _line_items(payload.get("line_items")),
        "currency": common.currency(payload.get("currency")),
        "total": common.money(payload.get("total"), "total"),
    }
    if status in _CHECKOUT_STATUSES:
        order_key = common.required_identifier(payload, "order_key", what)
        return [
            common.compact(
                {
                    "event_id": delivery.event_id("checkout.started", order_id, occurred_at),
                    "type": "checkout.started",
                    **common_fields,
                    "cart_id": order_key,
                    "checkout_url": common.url(payload.get("payment_url")),
                }
            )
        ]
    codes: list[str] = []
    for index, raw in enumerate(common.as_list(payload.get("coupon_lines"), "coupon_lines")):
        code = common.text(common.as_mapping(raw, f"coupon_lines[{index}]").get("code"))
        if code:
            codes.append(code)
    return [
        common.compact(
            {
                "event_id": delivery.event_id("order.placed", order_id, occurred_at),
                "type": "order.placed",
                **common_fields,
                "order_id": order_id,
                "cart_id": common.identifier(payload.get("order_key")),
                "discount_codes": common.discount_codes(codes),
            }
        )
    ]


def _customer(payload: Mapping[str, Any], delivery: _Delivery) -> list[dict[str, Any]]:
    customer_id = common.required_identifier(payload, "id", f"woocommerce {delivery.topic}")
    billing = common.optional_mapping(payload.get("billing"), "billing") or {}
    address = common.email(payload.get("email")) or common.email(billing.get("email"))
    occurred_at = _occurred_at(payload, delivery.topic)
    return [
        common.compact(
            {
                "event_id": delivery.event_id("contact.upserted", customer_id, occurred_at),
                "type": "contact.upserted",
                "occurred_at": occurred_at,
                "contact": common.contact(f"woocommerce:{customer_id}", address),
                "first_name": common.text(payload.get("first_name"))
                or common.text(billing.get("first_name")),
                "last_name": common.text(payload.get("last_name"))
                or common.text(billing.get("last_name")),
            }
        )
    ]


_Handler = Callable[[Mapping[str, Any], _Delivery], list[dict[str, Any]]]


def _product(payload: Mapping[str, Any], delivery: _Delivery) -> list[dict[str, Any]]:
    """A product as the REST API's product resource has it: ``price`` is what it sells for
    now and ``regular_price`` the price before a sale; ``stock_status`` ``instock`` or
    ``onbackorder`` and ``status`` ``publish`` make it available. Titles come HTML-escaped,
    as line items' do."""
    product_id = common.required_identifier(payload, "id", f"woocommerce {delivery.topic}")
    modified = _occurred_at(payload, delivery.topic)
    raw_name = payload.get("name")
    price = payload.get("price")
    regular = payload.get("regular_price")
    on_sale = payload.get("on_sale") is True and regular not in (None, "") and regular != price
    images = common.as_list(payload.get("images"), "images")
    image = images[0].get("src") if images and isinstance(images[0], Mapping) else None
    categories = [
        common.text(unescape(c["name"]))
        for c in common.as_list(payload.get("categories"), "categories")
        if isinstance(c, Mapping) and isinstance(c.get("name"), str)
    ]
    tags = [
        t["name"].strip()[:64]
        for t in common.as_list(payload.get("tags"), "tags")
        if isinstance(t, Mapping) and isinstance(t.get("name"), str) and t["name"].strip()
    ]
    quantity = payload.get("stock_quantity")
    event = {
        "event_id": delivery.event_id("product.upserted", product_id, modified),
        "type": "product.upserted",
        "occurred_at": modified,
        "product_id": product_id,
        "title": common.text(unescape(raw_name)) if isinstance(raw_name, str) else None,
        "url": common.url(payload.get("permalink")),
        "image_url": common.url(image),
        "price": common.money(price, "price") if price not in (None, "") else None,
        "compare_at_price": common.money(regular, "regular_price") if on_sale else None,
        "category": categories[0] if categories else None,
        "tags": tags,
        "available": payload.get("status", "publish") == "publish"
        and payload.get("stock_status", "instock") in ("instock", "onbackorder"),
        "inventory": quantity
        if isinstance(quantity, int) and not isinstance(quantity, bool)
        else None,
    }
    return [common.compact(event)]


def _product_deleted(payload: Mapping[str, Any], delivery: _Delivery) -> list[dict[str, Any]]:
    """WooCommerce's ``product.deleted`` body is the id alone; the time is the delivery's
    (the signed body has none), so a re-created id is never refused as a replay."""
    product_id = common.required_identifier(payload, "id", f"woocommerce {delivery.topic}")
    moment = payload.get("date_modified_gmt")
    stamp = common.timestamp(moment, "date_modified_gmt") if moment else None
    when = stamp or delivery.received_at()
    return [
        {
            "event_id": delivery.event_id("product.deleted", product_id, when),
            "type": "product.deleted",
            "occurred_at": when,
            "product_id": product_id,
        }
    ]


_HANDLERS: dict[str, _Handler] = {
    "order.created": _order,
    "order.updated": _order,
    "customer.created": _customer,
    "customer.updated": _customer,
    "product.created": _product,
    "product.updated": _product,
    "product.restored": _product,
    "product.deleted": _product_deleted,
}

MAPPED_TOPICS: frozenset[str] = frozenset(_HANDLERS)
"""The WooCommerce topics :func:`map_webhook` turns into events; all others map to nothing."""
