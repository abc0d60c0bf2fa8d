"""WooCommerce webhooks: HMAC verification, the unsigned ping, and mapping onto our events.

Fixtures in tests/fixtures/woocommerce/ are the JSON response examples of the WooCommerce REST
API v3 docs (https://woocommerce.github.io/woocommerce-rest-api-docs/): order 727 ("Retrieve an
order"), customer 25 ("List all customers") and customer 25 after "Update a customer". A webhook
delivers that same REST resource as its body.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from remarket_mailer.errors import ValidationError
from remarket_mailer.integrations import woocommerce
from remarket_mailer.schemas import parse_event

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "woocommerce"
SECRET = "wc-webhook-secret"
OLD_SECRET = "wc-webhook-secret-before-rotation"
HEADERS = {
    "X-WC-Webhook-Source": "https://example.com/",
    "X-WC-Webhook-Topic": "order.updated",
    "X-WC-Webhook-Resource": "order",
    "X-WC-Webhook-Event": "updated",
    "X-WC-Webhook-ID": "12",
    "X-WC-Webhook-Delivery-ID": "a3e1f8c0e6f1b1d2c4b5a6978877665544332211",
}
PAY_URL = "https://example.com/checkout/order-pay/727/?pay_for_order=true&key=wc_order_58d2d042d1d"


def raw(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw(name))
    return data


def order(status: str = "processing", **changes: Any) -> dict[str, Any]:
    payload = load("order_727")
    payload["status"] = status
    payload.update(changes)
    return payload


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


# --- signatures ---------------------------------------------------------------------------


def test_known_hmac_sha256_vector_verifies_as_base64() -> None:
    digest = bytes.fromhex("f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")
    body = b"The quick brown fox jumps over the lazy dog"
    assert woocommerce.verify_signature(body, base64.b64encode(digest).decode(), ["key"])


def test_signature_over_the_raw_body_verifies_and_a_tampered_body_does_not() -> None:
    body = raw("order_727")
    header = sign(body, SECRET)
    assert woocommerce.verify_signature(body, header, [SECRET])
    tampered = body.replace(b'"29.35"', b'"0.35"', 1)
    assert tampered != body
    assert not woocommerce.verify_signature(tampered, header, [SECRET])


def test_rotation_accepts_either_configured_secret() -> None:
    body = raw("customer_25")
    secrets = [OLD_SECRET, SECRET]
    assert woocommerce.verify_signature(body, sign(body, SECRET), secrets)
    assert woocommerce.verify_signature(body, sign(body, OLD_SECRET), secrets)
    assert not woocommerce.verify_signature(body, sign(body, "other"), secrets)


@pytest.mark.parametrize("header", [None, "", "%%%", "c2hvcnQ=", "0" * 64])
def test_missing_or_malformed_header_is_rejected(header: str | None) -> None:
    assert not woocommerce.verify_signature(b'{"id": 727}', header, [SECRET])


def test_no_secrets_never_verifies() -> None:
    body = b'{"id": 727}'
    assert not woocommerce.verify_signature(body, sign(body, SECRET), [])


@given(body=st.binary(max_size=2048), secret=st.text(min_size=1), wrong=st.text(min_size=1))
def test_any_body_signed_with_another_secret_is_rejected(
    body: bytes, secret: str, wrong: str
) -> None:
    assume(secret != wrong)
    assert not woocommerce.verify_signature(body, sign(body, wrong), [secret])
    assert woocommerce.verify_signature(body, sign(body, secret), [secret])


@given(body=st.binary(min_size=1, max_size=1024), data=st.data())
def test_any_single_byte_change_is_rejected(body: bytes, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(body) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    assert not woocommerce.verify_signature(tampered, sign(body, SECRET), [SECRET])


# --- the ping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"webhook_id=12"),
        ("application/x-www-form-urlencoded; charset=UTF-8", b"webhook_id=7"),
        ("Application/X-WWW-Form-Urlencoded", b"webhook_id=123456"),
        (None, b"webhook_id=12"),
    ],
)
def test_ping_is_recognised(content_type: str | None, body: bytes) -> None:
    assert woocommerce.is_woocommerce_ping(content_type, body)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"webhook_id=12"),
        ("application/x-www-form-urlencoded", b'{"webhook_id": 12}'),
        ("application/x-www-form-urlencoded", b"webhook_id="),
        ("application/x-www-form-urlencoded", b"webhook_id=abc"),
        ("application/x-www-form-urlencoded", b"webhook_id=12&x=1"),
        ("application/x-www-form-urlencoded", b"id=12"),
        ("application/x-www-form-urlencoded", b"webhook_id=\xd9\xa1"),
        ("application/x-www-form-urlencoded", b"webhook_id=%D9%A1"),
        ("application/x-www-form-urlencoded", b""),
        ("application/x-www-form-urlencoded", b"webhook_id=" + b"1" * 100),
        (None, b""),
    ],
)
def test_anything_else_is_not_a_ping(content_type: str | None, body: bytes) -> None:
    assert not woocommerce.is_woocommerce_ping(content_type, body)


def test_a_real_order_delivery_is_not_a_ping() -> None:
    assert not woocommerce.is_woocommerce_ping("application/json", raw("order_727"))


# --- orders -----------------------------------------------------------------------------------


@pytest.mark.parametrize("topic", ["order.created", "order.updated"])
def test_processing_order_maps_to_order_placed(topic: str) -> None:
    [event] = woocommerce.map_webhook(topic, load("order_727"), HEADERS)

    assert event["type"] == "order.placed"
    assert event["event_id"] == (
        f"woocommerce:12:{topic}:727:2017-03-22T19:28:08+00:00:order.placed"
    )
    assert event["order_id"] == "727"
    assert event["cart_id"] == "wc_order_58d2d042d1d"
    assert event["occurred_at"] == "2017-03-22T19:28:08+00:00"
    assert event["contact"] == {"email": "john.doe@example.com"}  # customer_id 0: a guest
    assert event["currency"] == "USD"
    assert event["total"] == "29.35"
    assert event["discount_codes"] == []
    assert event["items"] == [
        {"product_id": "93", "name": "Woo Single #1", "quantity": 2, "unit_price": "3.00"},
        {
            "sku": "Bar3",
            "product_id": "22",
            "name": "Ship Your Idea \u2013 Color: Black, Size: M Test",
            "quantity": 1,
            "unit_price": "12.00",
        },
    ]
    assert parse_event(event).type == "order.placed"


def test_completed_order_maps_to_order_placed() -> None:
    [event] = woocommerce.map_webhook("order.updated", order("completed"), HEADERS)
    assert event["type"] == "order.placed"


def test_on_hold_order_is_not_an_abandoned_checkout() -> None:
    # on-hold: awaiting a bank transfer the customer already chose; no cart reminders.
    assert woocommerce.map_webhook("order.updated", order("on-hold"), HEADERS) == []


@pytest.mark.parametrize("status", ["pending", "checkout-draft", "wc-pending"])
def test_unpaid_order_maps_to_checkout_started_keyed_by_order_key(status: str) -> None:
    [event] = woocommerce.map_webhook("order.updated", order(status), HEADERS)

    assert event["type"] == "checkout.started"
    assert event["cart_id"] == "wc_order_58d2d042d1d"
    assert event["total"] == "29.35"
    assert len(event["items"]) == 2
    assert "checkout_url" not in event  # the 2017 sample predates payment_url
    assert parse_event(event).type == "checkout.started"


def test_payment_url_becomes_the_checkout_url() -> None:
    [event] = woocommerce.map_webhook("order.created", order("pending", payment_url=PAY_URL), {})
    assert event["checkout_url"] == PAY_URL


def test_the_paid_order_closes_the_checkout_it_started_as() -> None:
    [started] = woocommerce.map_webhook("order.created", order("pending"), HEADERS)
    [placed] = woocommerce.map_webhook(
        "order.updated", order("processing", date_modified_gmt="2017-03-22T19:40:00"), HEADERS
    )
    assert started["type"] == "checkout.started"
    assert placed["type"] == "order.placed"
    assert placed["cart_id"] == started["cart_id"]
    assert placed["event_id"] != started["event_id"]


@pytest.mark.parametrize("status", ["cancelled", "refunded", "failed", "trash", "draft"])
def test_orders_in_other_statuses_map_to_nothing(status: str) -> None:
    assert woocommerce.map_webhook("order.updated", order(status), HEADERS) == []


def test_guest_order_without_email_maps_to_nothing() -> None:
    payload = order("pending")
    payload["billing"]["email"] = ""
    assert woocommerce.map_webhook("order.updated", payload, HEADERS) == []


def test_registered_customer_is_referenced_by_id() -> None:
    payload = order("processing", customer_id=26)
    payload["billing"]["email"] = ""
    [event] = woocommerce.map_webhook("order.updated", payload, HEADERS)
    assert event["contact"] == {"external_id": "woocommerce:26"}


def test_coupon_lines_become_discount_codes() -> None:
    coupons = [
        {
            "id": 320,
            "code": "spring10",
            "discount": "2.00",
            "discount_tax": "0.00",
            "meta_data": [],
        },
        {"id": 321, "code": "c" * 80, "discount": "1.00", "discount_tax": "0.00", "meta_data": []},
    ]
    [event] = woocommerce.map_webhook("order.created", order(coupon_lines=coupons), HEADERS)
    assert event["discount_codes"] == ["spring10"]


def test_line_without_price_uses_subtotal_per_unit() -> None:
    payload = order()
    del payload["line_items"][0]["price"]
    [event] = woocommerce.map_webhook("order.created", payload, HEADERS)
    assert event["items"][0]["unit_price"] == "3.00"


def test_line_image_is_kept_when_present() -> None:
    payload = order()
    payload["line_items"][1]["image"] = {"id": "24", "src": "https://example.com/idea.jpg"}
    [event] = woocommerce.map_webhook("order.created", payload, HEADERS)
    assert event["items"][1]["image_url"] == "https://example.com/idea.jpg"


def test_decimal_json_number_price_is_kept_exact() -> None:
    payload = order()
    payload["line_items"][0]["price"] = 21.99
    [event] = woocommerce.map_webhook("order.created", payload, HEADERS)
    assert event["items"][0]["unit_price"] == "21.99"


# --- customers ------------------------------------------------------------------------------


def test_customer_created_maps_to_contact_upserted() -> None:
    [event] = woocommerce.map_webhook("customer.created", load("customer_25"), HEADERS)
    assert event["type"] == "contact.upserted"
    assert event["contact"] == {"external_id": "woocommerce:25", "email": "john.doe@example.com"}
    assert event["first_name"] == "John"
    assert event["last_name"] == "Doe"
    assert event["occurred_at"] == "2017-03-21T19:09:30+00:00"
    parse_event(event)


def test_customer_updated_carries_the_new_name() -> None:
    [event] = woocommerce.map_webhook("customer.updated", load("customer_25_updated"), HEADERS)
    assert event["first_name"] == "James"
    assert event["occurred_at"] == "2017-03-21T19:12:28+00:00"


def test_customer_names_fall_back_to_billing() -> None:
    payload = load("customer_25")
    payload["first_name"] = ""
    [event] = woocommerce.map_webhook("customer.updated", payload, HEADERS)
    assert event["first_name"] == "John"


# --- unmapped topics ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("order.deleted", {"id": 727}),
        ("customer.deleted", {"id": 25}),
        ("coupon.created", {"id": 93}),
        ("coupon.updated", {"id": 5}),
        ("action.woocommerce_add_to_cart", {"action": "woocommerce_add_to_cart", "arg": "k"}),
        ("order.restored", {"id": 727}),
    ],
)
def test_unmapped_topics_give_no_events(topic: str, payload: dict[str, Any]) -> None:
    assert woocommerce.map_webhook(topic, payload, HEADERS) == []


# --- missing or malformed fields ----------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "payload", "field"),
    [
        ("order.created", {k: v for k, v in order().items() if k != "id"}, "id"),
        ("order.updated", order(id=None), "id"),
        ("order.updated", {k: v for k, v in order().items() if k != "status"}, "status"),
        ("order.updated", order(status=3), "status"),
        ("order.updated", order("pending", order_key=None), "order_key"),
        (
            "order.updated",
            order(date_modified_gmt=None, date_created_gmt=None),
            "date_modified_gmt",
        ),
        ("order.updated", order(date_modified_gmt="22/03/2017"), "date_modified_gmt"),
        ("order.updated", order(total=None), "total"),
        ("order.updated", order(total="-1.00"), "total"),
        ("order.updated", order(currency=None), "currency"),
        ("order.updated", order(currency="ABC"), "currency"),
        ("order.updated", order(line_items={"0": {}}), "line_items"),
        ("order.updated", order(billing="john.doe@example.com"), "billing"),
        ("order.updated", order(coupon_lines=["spring10"]), "coupon_lines[0]"),
        ("customer.created", {k: v for k, v in load("customer_25").items() if k != "id"}, "id"),
    ],
)
def test_payload_lacking_what_the_topic_requires_raises_validation_error(
    topic: str, payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        woocommerce.map_webhook(topic, payload, HEADERS)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("quantity", "many", "line_items[0].quantity"),
        ("price", "three", "line_items[0].price"),
        ("price", float("nan"), "line_items[0].price"),
    ],
)
def test_bad_line_item_raises_validation_error(key: str, value: Any, field: str) -> None:
    payload = order()
    payload["line_items"][0][key] = value
    with pytest.raises(ValidationError) as caught:
        woocommerce.map_webhook("order.updated", payload, HEADERS)
    assert caught.value.field == field


# --- event ids ----------------------------------------------------------------------------


def test_redelivery_maps_to_identical_events_even_with_a_new_delivery_id() -> None:
    first = woocommerce.map_webhook("order.updated", load("order_727"), HEADERS)
    again_headers = {**HEADERS, "X-WC-Webhook-Delivery-ID": "ffffffffffffffffffffffffffffffff"}
    again = woocommerce.map_webhook("order.updated", load("order_727"), again_headers)
    assert first == again


def test_a_newer_modification_or_another_webhook_gives_another_event_id() -> None:
    [base] = woocommerce.map_webhook("order.updated", order(), HEADERS)
    [newer] = woocommerce.map_webhook(
        "order.updated", order(date_modified_gmt="2017-03-22T19:28:09"), HEADERS
    )
    [other_hook] = woocommerce.map_webhook(
        "order.updated", order(), {**HEADERS, "X-WC-Webhook-ID": "13"}
    )
    assert len({base["event_id"], newer["event_id"], other_hook["event_id"]}) == 3


def test_gmt_time_with_an_explicit_offset_is_kept() -> None:
    [event] = woocommerce.map_webhook(
        "order.updated", order(date_modified_gmt="2017-03-22T19:28:08+00:00"), HEADERS
    )
    assert event["occurred_at"] == "2017-03-22T19:28:08+00:00"


@pytest.mark.parametrize("name", ["x-wc-webhook-id", "X-WC-WEBHOOK-ID", "X-Wc-Webhook-Id"])
def test_header_names_are_case_insensitive(name: str) -> None:
    [event] = woocommerce.map_webhook("customer.created", load("customer_25"), {name: "99"})
    assert event["event_id"].startswith("woocommerce:99:customer.created:25:")


# --- every mapped topic yields valid events -------------------------------------------------

MAPPED_SAMPLES: list[tuple[str, dict[str, Any], str]] = [
    ("order.created", order("processing"), "order.placed"),
    ("order.updated", order("pending", payment_url=PAY_URL), "checkout.started"),
    ("customer.created", load("customer_25"), "contact.upserted"),
    ("customer.updated", load("customer_25_updated"), "contact.upserted"),
    ("product.created", load("product_794"), "product.upserted"),
    ("product.updated", load("product_794"), "product.upserted"),
    ("product.restored", load("product_794"), "product.upserted"),
    ("product.deleted", {"id": 794}, "product.deleted"),
]


def test_every_mapped_topic_has_a_sample() -> None:
    assert {topic for topic, _, _ in MAPPED_SAMPLES} == woocommerce.MAPPED_TOPICS


@pytest.mark.parametrize(("topic", "payload", "event_type"), MAPPED_SAMPLES)
def test_every_mapped_topic_output_passes_parse_event(
    topic: str, payload: dict[str, Any], event_type: str
) -> None:
    [event] = woocommerce.map_webhook(topic, copy.deepcopy(payload), HEADERS)
    assert event["type"] == event_type
    assert parse_event(event).event_id == event["event_id"]
    assert json.loads(json.dumps(event)) == event


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
    "id", "status", "order_key", "currency", "total", "customer_id", "billing", "line_items",
    "coupon_lines", "date_modified_gmt", "date_created_gmt", "payment_url", "email",
    "first_name", "last_name",
]  # fmt: skip
LINE_KEYS = ["quantity", "price", "subtotal", "name", "sku", "product_id", "image"]


@settings(max_examples=300, deadline=None)
@given(
    sample=st.sampled_from(MAPPED_SAMPLES),
    overrides=st.dictionaries(st.sampled_from(TOP_KEYS), JSON_VALUES, max_size=4),
    line_overrides=st.dictionaries(st.sampled_from(LINE_KEYS), JSON_VALUES, max_size=3),
    status=st.sampled_from(["pending", "on-hold", "checkout-draft", "processing", "completed"]),
)
def test_malformed_payloads_raise_only_validation_error(
    sample: tuple[str, dict[str, Any], str],
    overrides: dict[str, Any],
    line_overrides: dict[str, Any],
    status: str,
) -> None:
    topic, base, _ = sample
    payload = {**copy.deepcopy(base), **overrides}
    if topic.startswith("order.") and "status" not in overrides:
        payload["status"] = status
    lines = payload.get("line_items")
    if isinstance(lines, list) and lines and isinstance(lines[0], dict):
        lines[0].update(line_overrides)
    try:
        events = woocommerce.map_webhook(topic, payload, HEADERS)
    except ValidationError:
        return
    for event in events:
        parse_event(event)


# --- products -------------------------------------------------------------------------------
# product_794.json is the REST API docs' "Retrieve a product" example (a webhook delivers the
# same resource); product.deleted delivers the id alone.


def test_product_maps_permalink_category_and_stock() -> None:
    headers = {**HEADERS, "X-WC-Webhook-Topic": "product.updated"}
    (event,) = woocommerce.map_webhook("product.updated", load("product_794"), headers)
    parse_event(event)
    assert (event["type"], event["product_id"], event["title"]) == (
        "product.upserted",
        "794",
        "Premium Quality",
    )
    assert event["url"] == "https://example.com/product/premium-quality-19/"
    assert event["image_url"] == "https://example.com/wp-content/uploads/2017/03/T_2_front-4.jpg"
    assert (event["price"], event["category"], event["available"]) == ("21.99", "Clothing", True)
    assert "compare_at_price" not in event  # not on sale
    sale = {**load("product_794"), "price": "15.00", "sale_price": "15.00", "on_sale": True}
    (on_sale,) = woocommerce.map_webhook("product.updated", sale, headers)
    assert (on_sale["price"], on_sale["compare_at_price"]) == ("15.00", "21.99")
    gone = {**load("product_794"), "stock_status": "outofstock"}
    assert woocommerce.map_webhook("product.updated", gone, headers)[0]["available"] is False


def test_product_deleted_maps_to_a_delete() -> None:
    (event,) = woocommerce.map_webhook("product.deleted", {"id": 794}, HEADERS)
    parse_event(event)
    assert (event["type"], event["product_id"]) == ("product.deleted", "794")
