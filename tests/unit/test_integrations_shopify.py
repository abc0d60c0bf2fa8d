"""Shopify webhooks: HMAC verification and mapping onto our event types.

Fixtures in tests/fixtures/shopify/ are the sample payloads of Shopify's webhook reference
(https://shopify.dev/docs/api/webhooks/2026-07); the ``checkouts/update`` and
``customers/update`` samples there are identical to the ``create`` ones.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from remarket_mailer.errors import ValidationError
from remarket_mailer.integrations import shopify
from remarket_mailer.schemas import parse_event

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shopify"
SECRET = "hush-app-client-secret"
OLD_SECRET = "previous-app-client-secret"
WEBHOOK_ID = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
HEADERS = {
    "X-Shopify-Webhook-Id": WEBHOOK_ID,
    "X-Shopify-Triggered-At": "2025-07-10T16:15:47.000000Z",
    "X-Shopify-Shop-Domain": "snowdevil.myshopify.com",
}


def raw(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw(name))
    return data


def sign(body: bytes, secret: str) -> str:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def by_type(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {event["type"]: event for event in events}


# --- signatures ---------------------------------------------------------------------------


def test_known_hmac_sha256_vector_verifies_as_base64() -> None:
    # RFC-style known answer: HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
    digest = bytes.fromhex("f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")
    header = base64.b64encode(digest).decode()
    body = b"The quick brown fox jumps over the lazy dog"
    assert shopify.verify_signature(body, header, ["key"])
    assert not shopify.verify_signature(body, header, ["Key"])


def test_signature_over_the_raw_body_verifies() -> None:
    body = raw("orders_create")
    assert shopify.verify_signature(body, sign(body, SECRET), [SECRET])


def test_tampered_body_is_rejected() -> None:
    body = raw("orders_create")
    header = sign(body, SECRET)
    tampered = body.replace(b'"404.95"', b'"0.01"', 1)
    assert tampered != body
    assert not shopify.verify_signature(tampered, header, [SECRET])


def test_reserialised_json_is_rejected_so_callers_must_pass_raw_bytes() -> None:
    body = raw("checkouts_create")
    header = sign(body, SECRET)
    reserialised = json.dumps(json.loads(body)).encode()
    assert not shopify.verify_signature(reserialised, header, [SECRET])


def test_rotation_accepts_old_and_new_secret_but_not_a_third() -> None:
    body = raw("customers_create")
    secrets = [SECRET, OLD_SECRET]
    assert shopify.verify_signature(body, sign(body, SECRET), secrets)
    assert shopify.verify_signature(body, sign(body, OLD_SECRET), secrets)
    assert not shopify.verify_signature(body, sign(body, "someone-else"), secrets)
    assert not shopify.verify_signature(body, sign(body, OLD_SECRET), [SECRET])


@pytest.mark.parametrize(
    "header",
    [None, "", "   ", "not base64 at all!", "AAAA", base64.b64encode(b"x" * 31).decode()],
)
def test_missing_or_malformed_header_is_rejected(header: str | None) -> None:
    assert not shopify.verify_signature(b"{}", header, [SECRET])


def test_hex_digest_of_the_right_hmac_is_rejected() -> None:
    body = b'{"id": 1}'
    hex_header = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert not shopify.verify_signature(body, hex_header, [SECRET])


def test_header_with_surrounding_whitespace_still_verifies() -> None:
    body = b'{"id": 1}'
    assert shopify.verify_signature(body, f" {sign(body, SECRET)}\n", [SECRET])


def test_no_secret_or_empty_secret_never_verifies() -> None:
    body = b'{"id": 1}'
    assert not shopify.verify_signature(body, sign(body, SECRET), [])
    assert not shopify.verify_signature(body, sign(body, ""), [""])


@given(body=st.binary(max_size=2048), secret=st.text(min_size=1), wrong=st.text(min_size=1))
def test_any_body_signed_with_another_secret_is_rejected(
    body: bytes, secret: str, wrong: str
) -> None:
    assume(secret != wrong)
    assert not shopify.verify_signature(body, sign(body, wrong), [secret])
    assert shopify.verify_signature(body, sign(body, secret), [secret])


@given(body=st.binary(min_size=1, max_size=1024), data=st.data())
def test_any_single_byte_change_is_rejected(body: bytes, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(body) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    assert not shopify.verify_signature(tampered, sign(body, SECRET), [SECRET])


@given(body=st.binary(max_size=512), header=st.text(max_size=64))
def test_random_header_is_rejected(body: bytes, header: str) -> None:
    assume(header.strip() != sign(body, SECRET))
    assert not shopify.verify_signature(body, header, [SECRET])


# --- checkouts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "fixture"),
    [("checkouts/create", "checkouts_create"), ("checkouts/update", "checkouts_update")],
)
def test_checkout_maps_to_checkout_started(topic: str, fixture: str) -> None:
    events = shopify.map_webhook(topic, load(fixture), HEADERS)

    assert [e["type"] for e in events] == ["checkout.started"]
    event = events[0]
    assert event["event_id"] == (
        f"shopify:{topic}:123123123:2021-12-31T19:00:00-05:00:checkout.started"
    )
    assert event["cart_id"] == "123123123"
    assert event["occurred_at"] == "2021-12-31T19:00:00-05:00"
    # The email typed at checkout wins over the customer record's address.
    assert event["contact"] == {
        "external_id": "shopify:603851970716743426",
        "email": "example@email.com",
    }
    assert event["currency"] == "USD"
    assert event["total"] == "421.88"
    assert event["checkout_url"] == (
        "https://checkout.local/548380009/checkouts/123123123/recover?key=example-secret-token"
    )
    assert (
        event["items"]
        == [
            {
                "sku": "IPOD2008PINK",
                "product_id": "632910392",
                "name": "IPod Nano - 8GB - Pink",
                "quantity": 1,
                "unit_price": "199.00",
            }
        ]
        * 2
    )
    parsed = parse_event(event)
    assert parsed.type == "checkout.started"


def test_checkout_without_email_uses_the_customer_address() -> None:
    payload = load("checkouts_create")
    payload["email"] = None
    [event] = shopify.map_webhook("checkouts/create", payload, HEADERS)
    assert event["contact"]["email"] == "john@example.com"


def test_checkout_with_customer_id_only_keeps_the_external_id() -> None:
    payload = load("checkouts_create")
    payload["email"] = None
    payload["customer"]["email"] = None
    [event] = shopify.map_webhook("checkouts/create", payload, HEADERS)
    assert event["contact"] == {"external_id": "shopify:603851970716743426"}


def test_checkout_with_no_email_and_no_customer_maps_to_nothing() -> None:
    payload = load("checkouts_create")
    payload["email"] = None
    payload["customer"] = None
    payload["buyer_accepts_marketing"] = True
    assert shopify.map_webhook("checkouts/create", payload, HEADERS) == []


def test_checkout_with_an_invalid_email_and_no_customer_maps_to_nothing() -> None:
    payload = load("checkouts_create")
    payload["email"] = "not-an-address"
    del payload["customer"]
    assert shopify.map_webhook("checkouts/update", payload, HEADERS) == []


def test_buyer_accepting_marketing_adds_a_granted_consent() -> None:
    payload = load("checkouts_create")
    payload["buyer_accepts_marketing"] = True
    events = shopify.map_webhook("checkouts/create", payload, HEADERS)

    assert [e["type"] for e in events] == ["checkout.started", "consent.changed"]
    consent = events[1]
    assert consent["status"] == "granted"
    assert consent["topic"] == "marketing"
    assert consent["source"] == "shopify:checkout"
    assert consent["contact"] == events[0]["contact"]
    assert consent["event_id"] != events[0]["event_id"]
    assert parse_event(consent).type == "consent.changed"


def test_completed_checkout_starts_no_reminders_but_keeps_the_consent() -> None:
    payload = load("checkouts_create")
    payload["completed_at"] = "2022-01-01T10:00:00-05:00"
    assert shopify.map_webhook("checkouts/update", payload, HEADERS) == []
    payload["buyer_accepts_marketing"] = True
    events = shopify.map_webhook("checkouts/update", payload, HEADERS)
    assert [e["type"] for e in events] == ["consent.changed"]


def test_edited_out_line_is_skipped() -> None:
    payload = load("checkouts_create")
    payload["line_items"][1]["quantity"] = 0
    [event] = shopify.map_webhook("checkouts/update", payload, HEADERS)
    assert len(event["items"]) == 1


# --- orders ---------------------------------------------------------------------------------


def test_order_sample_maps_to_order_placed_and_consent() -> None:
    events = by_type(shopify.map_webhook("orders/create", load("orders_create"), HEADERS))

    order = events["order.placed"]
    assert order["order_id"] == "820982911946154508"
    assert "cart_id" not in order  # the sample's checkout_token is null
    assert order["contact"] == {
        "external_id": "shopify:115310627314723954",
        "email": "jon@example.com",
    }
    assert order["currency"] == "USD"
    assert order["total"] == "404.95"
    assert order["discount_codes"] == []
    assert [item["name"] for item in order["items"]] == [
        "Aviator sunglasses",
        "Lens Protection Plan (2 Year)",
        "Premium Leather Case",
        "Mid-century lounger",
        "Coffee table",
    ]
    assert order["items"][0] == {
        "sku": "SKU2006-001",
        "product_id": "788032119674292922",
        "name": "Aviator sunglasses",
        "quantity": 1,
        "unit_price": "89.99",
    }
    assert "product_id" not in order["items"][1]  # null product_id in the sample
    assert events["consent.changed"]["source"] == "shopify:order"
    assert events["consent.changed"]["status"] == "granted"
    for event in events.values():
        parse_event(event)


def test_order_links_to_its_checkout_and_carries_discount_codes() -> None:
    [checkout] = shopify.map_webhook("checkouts/create", load("checkouts_create"), HEADERS)
    order_payload = load("orders_create")
    order_payload["checkout_token"] = "123123123"
    order_payload["discount_codes"] = [
        {"code": "SPRING10", "amount": "20.00", "type": "fixed_amount"},
        {"code": "X" * 65, "amount": "1.00", "type": "fixed_amount"},
    ]
    order = by_type(shopify.map_webhook("orders/create", order_payload, HEADERS))["order.placed"]

    assert order["cart_id"] == checkout["cart_id"] == "123123123"
    assert order["discount_codes"] == ["SPRING10"]
    assert parse_event(order).type == "order.placed"


def test_orders_paid_maps_like_orders_create() -> None:
    created = shopify.map_webhook("orders/create", load("orders_create"), {})
    paid = shopify.map_webhook("orders/paid", load("orders_create"), {})
    assert [e["type"] for e in paid] == [e["type"] for e in created]
    assert paid[0]["order_id"] == created[0]["order_id"]
    assert paid[0]["event_id"] != created[0]["event_id"]


def test_order_without_any_contact_maps_to_nothing() -> None:
    payload = load("orders_create")
    payload["email"] = payload["contact_email"] = None
    payload["customer"] = None
    assert shopify.map_webhook("orders/create", payload, HEADERS) == []


# --- customers and consent ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "fixture"),
    [("customers/create", "customers_create"), ("customers/update", "customers_update")],
)
def test_customer_maps_to_contact_upserted(topic: str, fixture: str) -> None:
    [event] = shopify.map_webhook(topic, load(fixture), HEADERS)
    assert event["type"] == "contact.upserted"
    assert event["contact"] == {
        "external_id": "shopify:706405506930370084",
        "email": "bob@biller.com",
    }
    assert event["first_name"] == "Bob"
    assert event["last_name"] == "Biller"
    assert event["occurred_at"] == "2021-12-31T19:00:00-05:00"
    parse_event(event)


def test_customer_locale_is_kept_when_readable_and_dropped_otherwise() -> None:
    payload = load("customers_create")
    payload["locale"] = "pt-BR"
    [event] = shopify.map_webhook("customers/update", payload, HEADERS)
    assert event["locale"] == "pt-BR"
    payload["locale"] = "!!"
    [event] = shopify.map_webhook("customers/update", payload, HEADERS)
    assert "locale" not in event


def test_consent_sample_not_subscribed_maps_to_nothing() -> None:
    payload = load("customers_email_marketing_consent_update")
    assert shopify.map_webhook("customers_email_marketing_consent/update", payload, HEADERS) == []


@pytest.mark.parametrize(
    ("state", "status"),
    [("subscribed", "granted"), ("unsubscribed", "withdrawn"), ("redacted", "withdrawn")],
)
def test_email_consent_state_maps_to_consent_changed(state: str, status: str) -> None:
    payload = load("customers_email_marketing_consent_update")
    payload["email_marketing_consent"] = {
        "state": state,
        "opt_in_level": "confirmed_opt_in",
        "consent_updated_at": "2024-03-01T10:00:00+01:00",
    }
    [event] = shopify.map_webhook("customers_email_marketing_consent/update", payload, HEADERS)
    assert event["type"] == "consent.changed"
    assert event["status"] == status
    assert event["occurred_at"] == "2024-03-01T10:00:00+01:00"
    assert event["contact"] == {
        "external_id": "shopify:706405506930370084",
        "email": "bob@biller.com",
    }
    parse_event(event)


def test_consent_without_a_time_uses_the_triggered_at_header() -> None:
    payload = load("customers_email_marketing_consent_update")
    payload["email_marketing_consent"]["state"] = "unsubscribed"
    [event] = shopify.map_webhook("customers_email_marketing_consent/update", payload, HEADERS)
    assert event["occurred_at"] == "2025-07-10T16:15:47+00:00"
    with pytest.raises(ValidationError) as caught:
        shopify.map_webhook("customers_email_marketing_consent/update", payload, {})
    assert caught.value.field == "email_marketing_consent.consent_updated_at"


# --- unmapped topics ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "fixture"),
    [
        ("carts/create", "carts_create"),
        ("carts/update", "carts_create"),
        ("checkouts/delete", "checkouts_delete"),
        ("customers/redact", "customers_redact"),
        ("collections/update", "orders_create"),
        ("no/such-topic", "orders_create"),
    ],
)
def test_unmapped_topics_give_no_events(topic: str, fixture: str) -> None:
    assert shopify.map_webhook(topic, load(fixture), HEADERS) == []


def test_topic_is_matched_case_and_space_insensitively() -> None:
    events = shopify.map_webhook(" Orders/Create ", load("orders_create"), HEADERS)
    assert [e["type"] for e in events] == ["order.placed", "consent.changed"]


# --- missing or malformed fields ----------------------------------------------------------


def _delete(key: str) -> Any:
    def mutate(payload: dict[str, Any]) -> None:
        del payload[key]

    return mutate


def _set(path: tuple[str | int, ...], value: Any) -> Any:
    def mutate(payload: dict[str, Any]) -> None:
        target: Any = payload
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mutate


@pytest.mark.parametrize(
    ("topic", "fixture", "mutate", "field"),
    [
        ("orders/create", "orders_create", _delete("id"), "id"),
        ("orders/paid", "orders_create", _set(("id",), None), "id"),
        ("orders/create", "orders_create", _set(("id",), {"nested": 1}), "id"),
        ("orders/create", "orders_create", _delete("currency"), "currency"),
        ("orders/create", "orders_create", _delete("total_price"), "total_price"),
        ("orders/create", "orders_create", _set(("discount_codes",), "SPRING"), "discount_codes"),
        ("orders/create", "orders_create", _set(("customer",), "c1"), "customer"),
        ("checkouts/create", "checkouts_create", _delete("token"), "token"),
        ("checkouts/update", "checkouts_create", _set(("token",), ""), "token"),
        ("checkouts/create", "checkouts_create", _set(("total_price",), "abc"), "total_price"),
        ("checkouts/create", "checkouts_create", _set(("total_price",), True), "total_price"),
        ("checkouts/create", "checkouts_create", _set(("currency",), "ZZZ"), "currency"),
        ("checkouts/create", "checkouts_create", _set(("line_items",), "x"), "line_items"),
        (
            "checkouts/create",
            "checkouts_create",
            _set(("line_items", 0, "price"), "-1.00"),
            "line_items[0].price",
        ),
        (
            "checkouts/create",
            "checkouts_create",
            _set(("line_items", 0, "quantity"), "two"),
            "line_items[0].quantity",
        ),
        ("checkouts/create", "checkouts_create", _set(("line_items", 1), 7), "line_items[1]"),
        ("checkouts/create", "checkouts_create", _set(("updated_at",), "yesterday"), "updated_at"),
        ("customers/create", "customers_create", _delete("id"), "id"),
        (
            "customers_email_marketing_consent/update",
            "customers_email_marketing_consent_update",
            _delete("email_marketing_consent"),
            "email_marketing_consent",
        ),
    ],
)
def test_payload_lacking_what_the_topic_requires_raises_validation_error(
    topic: str, fixture: str, mutate: Any, field: str
) -> None:
    payload = load(fixture)
    mutate(payload)
    with pytest.raises(ValidationError) as caught:
        shopify.map_webhook(topic, payload, HEADERS)
    assert caught.value.field == field


def test_consent_without_customer_or_email_raises() -> None:
    payload = load("customers_email_marketing_consent_update")
    payload["customer_id"] = None
    payload["email_address"] = None
    with pytest.raises(ValidationError) as caught:
        shopify.map_webhook("customers_email_marketing_consent/update", payload, HEADERS)
    assert caught.value.field == "customer_id"


def test_amount_with_more_than_two_decimals_is_rounded_half_up() -> None:
    payload = load("checkouts_create")
    payload["total_price"] = "421.885"
    [event] = shopify.map_webhook("checkouts/create", payload, HEADERS)
    assert event["total"] == "421.89"


# --- event ids ----------------------------------------------------------------------------


def test_redelivery_maps_to_identical_events() -> None:
    first = shopify.map_webhook("orders/create", load("orders_create"), HEADERS)
    again = shopify.map_webhook("orders/create", load("orders_create"), dict(HEADERS))
    assert first == again


def test_a_replay_under_a_new_webhook_id_maps_to_the_same_events() -> None:
    # The Webhook-Id and Triggered-At headers are not signed: anyone holding one signed
    # delivery can resend its body under new ones.
    other = {
        **HEADERS,
        "X-Shopify-Webhook-Id": "0c3b9a1e-8f5c-4d67-a0f2-1b2c3d4e5f60",
        "X-Shopify-Triggered-At": "2026-01-01T00:00:00Z",
    }
    for topic, fixture in [
        ("checkouts/create", "checkouts_create"),
        ("orders/create", "orders_create"),
        ("customers/update", "customers_update"),
        ("customers_email_marketing_consent/update", "customers_email_marketing_consent_update"),
    ]:
        first = shopify.map_webhook(topic, load(fixture), HEADERS)
        second = shopify.map_webhook(topic, load(fixture), other)
        assert first == second, topic


def test_a_payload_without_its_time_is_keyed_by_its_digest_not_the_header() -> None:
    payload = load("customers_create")
    del payload["updated_at"], payload["created_at"]
    [first] = shopify.map_webhook("customers/create", payload, HEADERS)
    assert first["occurred_at"] == "2025-07-10T16:15:47+00:00"  # from X-Shopify-Triggered-At
    assert first["event_id"].startswith("shopify:customers/create:706405506930370084:sha256:")
    later = {**HEADERS, "X-Shopify-Triggered-At": "2025-07-10T16:20:00Z"}
    [again] = shopify.map_webhook("customers/create", copy.deepcopy(payload), later)
    assert again["event_id"] == first["event_id"]
    payload["first_name"] = "Changed"
    [changed] = shopify.map_webhook("customers/create", payload, HEADERS)
    assert changed["event_id"] != first["event_id"]


def test_without_webhook_id_the_id_comes_from_topic_token_and_updated_at() -> None:
    payload = load("checkouts_create")
    [first] = shopify.map_webhook("checkouts/update", payload, {})
    [again] = shopify.map_webhook("checkouts/update", copy.deepcopy(payload), {})
    assert first["event_id"] == again["event_id"]
    assert first["event_id"] == (
        "shopify:checkouts/update:123123123:2021-12-31T19:00:00-05:00:checkout.started"
    )
    payload["updated_at"] = "2021-12-31T19:05:00-05:00"
    [later] = shopify.map_webhook("checkouts/update", payload, {})
    assert later["event_id"] != first["event_id"]
    [created] = shopify.map_webhook("checkouts/create", load("checkouts_create"), {})
    assert created["event_id"] != first["event_id"]


@pytest.mark.parametrize(
    "name", ["x-shopify-triggered-at", "X-SHOPIFY-TRIGGERED-AT", "X-Shopify-Triggered-At"]
)
def test_header_names_are_case_insensitive(name: str) -> None:
    payload = load("customers_create")
    del payload["updated_at"], payload["created_at"]
    [event] = shopify.map_webhook("customers/create", payload, {name: "2025-07-10T16:15:47Z"})
    assert event["occurred_at"] == "2025-07-10T16:15:47+00:00"


def test_over_long_event_id_is_hashed_to_fit() -> None:
    payload = {**load("customers_create"), "id": "w" * 245}
    [event] = shopify.map_webhook("customers/create", payload, HEADERS)
    assert len(event["event_id"]) <= 255
    assert event["event_id"].startswith("shopify:sha256:")
    parse_event(event)


# --- every mapped topic yields valid events -------------------------------------------------


def _consenting(name: str) -> dict[str, Any]:
    payload = load(name)
    payload["email_marketing_consent"]["state"] = "subscribed"
    payload["email_marketing_consent"]["consent_updated_at"] = "2024-03-01T10:00:00+01:00"
    return payload


MAPPED_SAMPLES: list[tuple[str, dict[str, Any], int]] = [
    ("checkouts/create", load("checkouts_create"), 1),
    ("checkouts/update", load("checkouts_update"), 1),
    ("orders/create", load("orders_create"), 2),
    ("orders/paid", load("orders_create"), 2),
    ("customers/create", load("customers_create"), 1),
    ("customers/update", load("customers_update"), 1),
    (
        "customers_email_marketing_consent/update",
        _consenting("customers_email_marketing_consent_update"),
        1,
    ),
    ("products/create", load("products_create"), 1),
    ("products/update", load("products_create"), 1),
    ("products/delete", load("products_delete"), 1),
]


def test_every_mapped_topic_has_a_sample() -> None:
    assert {topic for topic, _, _ in MAPPED_SAMPLES} == shopify.MAPPED_TOPICS


@pytest.mark.parametrize(("topic", "payload", "count"), MAPPED_SAMPLES)
def test_every_mapped_topic_output_passes_parse_event(
    topic: str, payload: dict[str, Any], count: int
) -> None:
    events = shopify.map_webhook(topic, copy.deepcopy(payload), HEADERS)
    assert len(events) == count
    assert len({event["event_id"] for event in events}) == count
    for event in events:
        assert parse_event(event).event_id == event["event_id"]
        assert json.loads(json.dumps(event)) == event  # plain JSON, no Decimal or datetime


# --- property: malformed payloads only ever raise ValidationError ---------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
TOP_KEYS = [
    "id",
    "token",
    "email",
    "contact_email",
    "customer",
    "line_items",
    "currency",
    "total_price",
    "updated_at",
    "created_at",
    "completed_at",
    "buyer_accepts_marketing",
    "discount_codes",
    "checkout_token",
    "abandoned_checkout_url",
    "first_name",
    "locale",
    "customer_id",
    "email_address",
    "email_marketing_consent",
]
LINE_KEYS = ["quantity", "price", "title", "name", "sku", "product_id", "variant_title"]


@settings(max_examples=300, deadline=None)
@given(
    sample=st.sampled_from(MAPPED_SAMPLES),
    overrides=st.dictionaries(st.sampled_from(TOP_KEYS), JSON_VALUES, max_size=4),
    line_overrides=st.dictionaries(st.sampled_from(LINE_KEYS), JSON_VALUES, max_size=3),
    headers=st.dictionaries(
        st.sampled_from(["X-Shopify-Webhook-Id", "X-Shopify-Triggered-At"]),
        st.text(max_size=30),
    ),
)
def test_malformed_payloads_raise_only_validation_error(
    sample: tuple[str, dict[str, Any], int],
    overrides: dict[str, Any],
    line_overrides: dict[str, Any],
    headers: dict[str, str],
) -> None:
    topic, base, _ = sample
    payload = {**copy.deepcopy(base), **overrides}
    lines = payload.get("line_items")
    if isinstance(lines, list) and lines and isinstance(lines[0], dict):
        lines[0].update(line_overrides)
    try:
        events = shopify.map_webhook(topic, payload, headers)
    except ValidationError:
        return
    for event in events:
        parse_event(event)


# --- products -------------------------------------------------------------------------------
# products_create.json is the sample of Shopify's products/create reference; products/update
# has the same body, products/delete is the id alone.


def test_product_maps_price_stock_image_and_a_link_on_our_storefront() -> None:
    (event,) = shopify.map_webhook(
        "products/create", load("products_create"), HEADERS, storefront="https://shop.example/"
    )
    parsed = parse_event(event)
    assert event["type"] == "product.upserted" and event["product_id"] == "788032119674292922"
    assert (event["title"], event["price"], event["compare_at_price"]) == (
        "Example T-Shirt",
        "19.99",
        "24.99",
    )
    assert event["url"] == "https://shop.example/products/example-t-shirt"
    assert event["image_url"].startswith("https://cdn.shopify.com/s/assets/shopify_shirt-")
    assert event["category"] == "Shirts" and event["tags"] == ["example", "mens", "t-shirt"]
    assert event["available"] is True
    assert [(v["sku"], v["inventory"]) for v in event["variants"]] == [
        ("example-shirt-s", 75),
        ("example-shirt-m", 50),
    ]
    assert parsed.occurred_at == datetime(2023, 9, 18, 6, 51, 36, tzinfo=UTC)


def test_product_link_never_comes_from_the_unsigned_shop_domain_header() -> None:
    (event,) = shopify.map_webhook("products/update", load("products_create"), HEADERS)
    assert "url" not in event  # no storefront configured: no link rather than a guessed one


def test_sold_out_or_draft_product_is_not_available() -> None:
    payload = load("products_create")
    for variant in payload["variants"]:
        variant["inventory_quantity"] = 0
    (sold_out,) = shopify.map_webhook("products/update", payload, HEADERS)
    assert sold_out["available"] is False
    payload["variants"][0]["inventory_policy"] = "continue"  # sells when out of stock
    (continued,) = shopify.map_webhook("products/update", payload, HEADERS)
    assert continued["available"] is True
    draft = {**load("products_create"), "status": "draft"}
    assert shopify.map_webhook("products/update", draft, HEADERS)[0]["available"] is False


def test_product_delete_is_the_id_and_the_delivery_time() -> None:
    (event,) = shopify.map_webhook("products/delete", load("products_delete"), HEADERS)
    parsed = parse_event(event)
    assert (event["type"], event["product_id"]) == ("product.deleted", "788032119674292922")
    assert parsed.occurred_at == datetime(2025, 7, 10, 16, 15, 47, tzinfo=UTC)
    again = shopify.map_webhook("products/delete", load("products_delete"), HEADERS)
    assert again[0]["event_id"] == event["event_id"]  # a retry is a duplicate
