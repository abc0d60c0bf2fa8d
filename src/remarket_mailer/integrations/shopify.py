"""Shopify webhooks: verify the HMAC and map a delivery onto our event types.

- ``checkouts/create``, ``checkouts/update`` → ``checkout.started`` (cart_id = ``token``),
  plus ``consent.changed`` granted (source ``shopify:checkout``) when
  ``buyer_accepts_marketing`` is true.
- ``orders/create``, ``orders/paid`` → ``order.placed`` (cart_id = ``checkout_token``, the
  checkout's token), plus ``consent.changed`` granted (source ``shopify:order``) when
  ``buyer_accepts_marketing`` is true.
- ``customers/create``, ``customers/update`` → ``contact.upserted``.
- ``customers_email_marketing_consent/update`` → ``consent.changed``: ``subscribed`` →
  granted; ``unsubscribed`` and ``redacted`` → withdrawn; other states → nothing.
- ``products/create``, ``products/update`` → ``product.upserted`` (product_id = ``id``);
  ``products/delete`` → ``product.deleted`` (mapped in ``shopify_catalog.py``). The
  product's link is ``<storefront>/products/<handle>``, the storefront being the shop URL we
  are configured with (``REMARKET_SHOP_URL``): never the ``X-Shopify-Shop-Domain`` header,
  which the signature does not cover, so a replayed body under another header cannot point
  our emails at another site.
- Anything else (carts, ``checkouts/delete``, order updates, compliance topics) → nothing.

A checkout without an email and without a customer maps to nothing: there is nobody to write
to. A completed checkout (``completed_at`` set) maps to no ``checkout.started``, because the
order is on its way and must not start reminders. Contacts use ``shopify:<customer id>`` as
``external_id`` so ids from different shop systems never collide.

``event_id`` is ``shopify:<topic>:<token or id>:<updated_at>:<event type>``: what the signed
body says, never the unsigned ``X-Shopify-Webhook-Id`` header. A replay of a signed delivery
under a new Webhook-Id (which anyone holding one delivery can send) and Shopify's own retries
map to the same ids and the same bodies, so they are no-ops downstream; a real change of the
resource has a new ``updated_at``. A payload without its time field is keyed by a digest of
the payload instead (never by ``X-Shopify-Triggered-At``, a header too).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from remarket_mailer.errors import ValidationError
from remarket_mailer.integrations import common, shopify_catalog

SIGNATURE_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"

_CONSENT_STATES = {
    "subscribed": "granted",
    "unsubscribed": "withdrawn",
    "redacted": "withdrawn",
}


def verify_signature(raw_body: bytes, header_value: str | None, secrets: Sequence[str]) -> bool:
    """True when ``header_value`` (``X-Shopify-Hmac-Sha256``) signs ``raw_body``.

    The signature is base64(HMAC-SHA256(raw body, app client secret)). Pass every secret that
    may be in use (during a rotation Shopify can sign with the old one for up to an hour).
    Use the bytes as received, before any JSON parsing. Never raises.
    """
    return common.verify_base64_hmac_sha256(raw_body, header_value, secrets)


def map_webhook(
    topic: str,
    payload: Mapping[str, Any],
    headers: Mapping[str, str],
    storefront: str | None = None,
) -> list[dict[str, Any]]:
    """Map one Shopify delivery onto zero or more of our event dicts.

    ``topic`` is the ``X-Shopify-Topic`` value, ``payload`` the parsed JSON body and
    ``headers`` the request headers (any case). Every dict returned passes
    ``remarket_mailer.schemas.parse_event``. Unknown or unmapped topics give an empty list.

    Raises ValidationError (with ``field``) when the payload lacks what its topic requires,
    e.g. ``orders/create`` without ``id``, or carries a value of the wrong shape.
    """
    return common.dispatch(
        topic, payload, headers, _HANDLERS, partial(Delivery, storefront=storefront)
    )


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery: its topic, headers and our storefront URL."""

    topic: str
    headers: dict[str, str]
    storefront: str | None = None

    def event_id(
        self, event_type: str, resource: str, payload: Mapping[str, Any], *keys: str
    ) -> str:
        """The id of ``event_type`` for version ``payload[keys[0]]`` (the first of ``keys``
        present, read as a time) of ``resource``: the same for every copy of one signed body."""
        for key in keys:
            stamp = common.timestamp(payload.get(key), key)
            if stamp is not None:
                return common.event_id("shopify", self.topic, resource, stamp, event_type)
        digest = hashlib.sha256(
            json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
        ).hexdigest()
        return common.event_id("shopify", self.topic, resource, f"sha256:{digest}", event_type)

    def occurred_at(self, payload: Mapping[str, Any], *keys: str, where: str = "") -> str:
        """The first of ``keys`` that holds a time, else the X-Shopify-Triggered-At header."""
        for key in keys:
            found = common.timestamp(payload.get(key), f"{where}{key}")
            if found is not None:
                return found
        triggered = common.timestamp(
            self.headers.get("x-shopify-triggered-at"), "X-Shopify-Triggered-At"
        )
        if triggered is None:
            raise ValidationError(
                f"shopify {self.topic} payload has no {keys[0]!r} and no X-Shopify-Triggered-At",
                field=f"{where}{keys[0]}",
            )
        return triggered


def _customer_ref(customer: Mapping[str, Any] | None, *addresses: Any) -> dict[str, str] | None:
    customer_id = common.identifier(customer.get("id")) if customer else None
    external_id = f"shopify:{customer_id}" if customer_id else None
    candidates = [*addresses, customer.get("email") if customer else None]
    address = next((found for found in map(common.email, candidates) if found), None)
    return common.contact(external_id, address)


def _line_items(value: Any, name_key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for index, raw in enumerate(common.as_list(value, "line_items")):
        where = f"line_items[{index}]"
        line = common.as_mapping(raw, where)
        count = common.quantity(line.get("quantity"), f"{where}.quantity")
        if count < 1:
            continue  # a line edited down to nothing is not something the buyer left behind
        name = common.text(line.get(name_key)) or common.text(line.get("title"))
        variant = common.text(line.get("variant_title"))
        if name_key == "title" and name and variant:
            name = f"{name} - {variant}"[: common.MAX_NAME_LENGTH]
        items.append(
            common.compact(
                {
                    "sku": common.text(line.get("sku")),
                    "product_id": common.identifier(line.get("product_id")),
                    "name": name or "Item",
                    "quantity": count,
                    "unit_price": common.money(line.get("price"), f"{where}.price"),
                }
            )
        )
    return items[: common.MAX_ITEMS]


def _consent_granted(
    delivery: Delivery,
    contact: dict[str, str],
    occurred_at: str,
    version: tuple[Mapping[str, Any], tuple[str, ...]],
    resource: str,
    source: str,
    evidence: str,
) -> dict[str, Any]:
    return {
        "event_id": delivery.event_id("consent.changed", resource, version[0], *version[1]),
        "type": "consent.changed",
        "occurred_at": occurred_at,
        "contact": contact,
        "topic": "marketing",
        "status": "granted",
        "source": source,
        "evidence": evidence,
    }


def _checkout(payload: Mapping[str, Any], delivery: Delivery) -> list[dict[str, Any]]:
    token = common.required_identifier(payload, "token", f"shopify {delivery.topic}")
    customer = common.optional_mapping(payload.get("customer"), "customer")
    contact = _customer_ref(customer, payload.get("email"))
    if contact is None:
        return []
    stamps = ("updated_at", "created_at")
    occurred_at = delivery.occurred_at(payload, *stamps)
    events: list[dict[str, Any]] = []
    if payload.get("completed_at") is None:
        events.append(
            common.compact(
                {
                    "event_id": delivery.event_id("checkout.started", token, payload, *stamps),
                    "type": "checkout.started",
                    "occurred_at": occurred_at,
                    "contact": contact,
                    "cart_id": token,
                    "items": _line_items(payload.get("line_items"), "title"),
                    "currency": common.currency(payload.get("currency")),
                    "total": common.money(payload.get("total_price"), "total_price"),
                    "checkout_url": common.url(payload.get("abandoned_checkout_url")),
                }
            )
        )
    if payload.get("buyer_accepts_marketing") is True:
        events.append(
            _consent_granted(
                delivery,
                contact,
                occurred_at,
                (payload, stamps),
                token,
                "shopify:checkout",
                f"buyer_accepts_marketing=true on checkout {token}",
            )
        )
    return events


def _order(payload: Mapping[str, Any], delivery: Delivery) -> list[dict[str, Any]]:
    order_id = common.required_identifier(payload, "id", f"shopify {delivery.topic}")
    customer = common.optional_mapping(payload.get("customer"), "customer")
    contact = _customer_ref(customer, payload.get("email"), payload.get("contact_email"))
    if contact is None:
        return []
    stamps = ("updated_at", "processed_at", "created_at")
    occurred_at = delivery.occurred_at(payload, *stamps)
    codes: list[str] = []
    for index, raw in enumerate(common.as_list(payload.get("discount_codes"), "discount_codes")):
        code = common.text(common.as_mapping(raw, f"discount_codes[{index}]").get("code"))
        if code:
            codes.append(code)
    events: list[dict[str, Any]] = [
        common.compact(
            {
                "event_id": delivery.event_id("order.placed", order_id, payload, *stamps),
                "type": "order.placed",
                "occurred_at": occurred_at,
                "contact": contact,
                "order_id": order_id,
                # The checkout's token is our cart_id, so this links the order to its checkout.
                "cart_id": common.identifier(payload.get("checkout_token")),
                "items": _line_items(payload.get("line_items"), "name"),
                "currency": common.currency(payload.get("currency")),
                "total": common.money(payload.get("total_price"), "total_price"),
                "discount_codes": common.discount_codes(codes),
            }
        )
    ]
    if payload.get("buyer_accepts_marketing") is True:
        events.append(
            _consent_granted(
                delivery,
                contact,
                occurred_at,
                (payload, stamps),
                order_id,
                "shopify:order",
                f"buyer_accepts_marketing=true on order {order_id}",
            )
        )
    return events


def _customer(payload: Mapping[str, Any], delivery: Delivery) -> list[dict[str, Any]]:
    customer_id = common.required_identifier(payload, "id", f"shopify {delivery.topic}")
    contact = common.contact(f"shopify:{customer_id}", common.email(payload.get("email")))
    stamps = ("updated_at", "created_at")
    occurred_at = delivery.occurred_at(payload, *stamps)
    return [
        common.compact(
            {
                "event_id": delivery.event_id("contact.upserted", customer_id, payload, *stamps),
                "type": "contact.upserted",
                "occurred_at": occurred_at,
                "contact": contact,
                "first_name": common.text(payload.get("first_name")),
                "last_name": common.text(payload.get("last_name")),
                "locale": common.locale(payload.get("locale")),
            }
        )
    ]


def _email_consent(payload: Mapping[str, Any], delivery: Delivery) -> list[dict[str, Any]]:
    customer_id = common.identifier(payload.get("customer_id"))
    address = common.email(payload.get("email_address"))
    contact = common.contact(f"shopify:{customer_id}" if customer_id else None, address)
    if contact is None:
        raise ValidationError(
            f"shopify {delivery.topic} payload has neither customer_id nor email_address",
            field="customer_id",
        )
    consent = common.as_mapping(payload.get("email_marketing_consent"), "email_marketing_consent")
    state = consent.get("state")
    status = _CONSENT_STATES.get(state.lower()) if isinstance(state, str) else None
    if status is None:
        # not_subscribed, pending and invalid say nothing about a consent we hold.
        return []
    occurred_at = delivery.occurred_at(
        consent, "consent_updated_at", where="email_marketing_consent."
    )
    level = consent.get("opt_in_level")
    return [
        {
            "event_id": delivery.event_id(
                "consent.changed", customer_id or address or "", consent, "consent_updated_at"
            ),
            "type": "consent.changed",
            "occurred_at": occurred_at,
            "contact": contact,
            "topic": "marketing",
            "status": status,
            "source": "shopify:email_marketing_consent",
            "evidence": f"state={state}; opt_in_level={level}",
        }
    ]


_Handler = Callable[[Mapping[str, Any], Delivery], list[dict[str, Any]]]

_HANDLERS: dict[str, _Handler] = {
    "checkouts/create": _checkout,
    "checkouts/update": _checkout,
    "orders/create": _order,
    "orders/paid": _order,
    "customers/create": _customer,
    "customers/update": _customer,
    "customers_email_marketing_consent/update": _email_consent,
    "products/create": shopify_catalog.product,
    "products/update": shopify_catalog.product,
    "products/delete": shopify_catalog.product_deleted,
}

MAPPED_TOPICS: frozenset[str] = frozenset(_HANDLERS)
"""The Shopify topics :func:`map_webhook` turns into events; all others map to nothing."""
