"""Hostile and malformed requests get a 4xx in the project's JSON shape, never a 500, and a
batch with one bad event keeps the others. Each case here was a 500 or a silent acceptance."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from remarket_mailer.db.models import Contact, Enrollment, Event
from remarket_mailer.entrypoints.api import create_api
from remarket_mailer.services import ingest
from tests.conftest import T0, AppFactory
from tests.helpers import AUTH, cart_event, consent_event, event, profile_event

DEEP = ("[" * 50_000 + "]" * 50_000).encode()
DEEP_SMALL = ("[" * 7_000 + "]" * 7_000).encode()  # under the discount routes' 16 kB
SHOP_SECRET = "shpss_hostile"
WOO_SECRET = "wc_hostile"
ADMIN = {"Authorization": "Bearer admin-key"}
JSON = {"Content-Type": "application/json"}


def client_for(make_app: AppFactory, **settings: Any) -> tuple[Any, TestClient]:
    app = make_app(
        shopify_webhook_secrets=[SHOP_SECRET],
        woocommerce_webhook_secrets=[WOO_SECRET],
        admin_api_keys=["admin-key"],
        **settings,
    )
    return app, TestClient(create_api(app), raise_server_exceptions=False)


def error_of(response: Any, status: int) -> dict[str, Any]:
    """The response is ``status`` with the project's error body; returns the body."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) >= {"error", "message"}, body
    return body


def count(app: Any, model: Any) -> int:
    with app.uow() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def shop_headers(body: bytes) -> dict[str, str]:
    digest = hmac.new(SHOP_SECRET.encode(), body, hashlib.sha256).digest()
    return {
        **JSON,
        "X-Shopify-Topic": "checkouts/update",
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Webhook-Id": "hostile-1",
    }


def woo_headers(body: bytes) -> dict[str, str]:
    digest = hmac.new(WOO_SECRET.encode(), body, hashlib.sha256).digest()
    return {
        **JSON,
        "X-WC-Webhook-Topic": "order.created",
        "X-WC-Webhook-Signature": base64.b64encode(digest).decode(),
    }


# --- deep JSON -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/events", {**JSON, **AUTH}),
        ("/v1/events/batch", {**JSON, **AUTH}),
        ("/v1/integrations/shopify", shop_headers(DEEP)),
        ("/v1/integrations/woocommerce", woo_headers(DEEP)),
        ("/v1/contacts/erase", {**JSON, **ADMIN}),
        ("/v1/discounts/validate", {**JSON, **AUTH}),
    ],
)
def test_fifty_thousand_levels_of_json_are_a_400(
    make_app: AppFactory, path: str, headers: dict[str, str]
) -> None:
    _, client = client_for(make_app)
    sent = DEEP_SMALL if path.startswith("/v1/discounts") else DEEP
    body = error_of(client.post(path, content=sent, headers=headers), 400)
    assert body["error"] == "invalid_json"
    assert "nests more than" in body["message"]


# --- values the database cannot hold --------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("first_name", {"first_name": "Ann\u0000"}),
        ("event_id", {"event_id": "evt-\u0000"}),
        ("contact.external_id", {"contact": {"external_id": "c\u0000", "email": "a@b.example"}}),
        ("attributes.tier", {"attributes": {"tier": ["gold", {"x": "\u0000"}]}}),
        ("attributes", {"attributes": {"k\u0000": 1}}),
    ],
)
def test_a_nul_character_is_refused_naming_the_field(
    make_app: AppFactory, field: str, change: dict[str, Any]
) -> None:
    app, client = client_for(make_app)
    sent = {**profile_event(T0), **change}
    body = error_of(client.post("/v1/events", json=sent, headers=AUTH), 422)
    assert field in json.dumps(body["detail"]), body
    assert count(app, Event) == 0


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: {**profile_event(T0), "occurred_at": "9999-12-31T23:59:59-14:00"}, "occurred_at"),
        (lambda: {**profile_event(T0), "occurred_at": "0001-01-01T00:00:00+14:00"}, "occurred_at"),
        (
            lambda: event(
                "subscription.upserted",
                T0,
                subscription_id="sub-1",
                renews_at="0001-01-01T00:00:00+00:00",
            ),
            "renews_at",
        ),
        (lambda: profile_event(T0, locale="en-" + "-".join(["abcdefgh"] * 5)), "locale"),
    ],
)
def test_dates_and_locales_out_of_range_are_a_422(
    make_app: AppFactory, make: Any, field: str
) -> None:
    app, client = client_for(make_app)
    body = error_of(client.post("/v1/events", json=make(), headers=AUTH), 422)
    assert [p["field"] for p in body["detail"]] == [field]
    assert count(app, Event) == 0


def test_the_longest_ids_the_schema_accepts_fit_every_key(make_app: AppFactory) -> None:
    app, client = client_for(make_app)
    long_id = "e" * 255
    for sent in (
        consent_event(T0 - timedelta(minutes=1)),
        event(
            "product.viewed",
            T0,
            event_id=long_id,
            product_id="p" * 255,
            name="Mug",
            url="https://shop.example/mug",
        ),
        event(
            "subscription.upserted",
            T0,
            subscription_id="s" * 255,
            renews_at=(T0 + timedelta(days=40)).isoformat(),
            price="9.00",
            currency="EUR",
        ),
    ):
        response = client.post("/v1/events", json=sent, headers=AUTH)
        assert response.status_code == 202, response.text
    with app.uow() as session:
        keys = sorted(session.scalars(select(Enrollment.key)))
    assert len(keys) == 2, keys
    assert any(key.endswith(long_id) for key in keys)
    assert any(key.startswith("s" * 255 + "@") for key in keys)


# --- one bad event among good ones ----------------------------------------------------------


@pytest.fixture
def failing_event(monkeypatch: pytest.MonkeyPatch) -> str:
    """Events with this id fail while being applied, as an unforeseen bug or a value the
    database refuses would."""
    poisoned = "evt-poisoned"
    apply_facts = ingest.apply_facts

    def failing(batch: Any, contact: Any, sent: Any) -> Any:
        if sent.event_id == poisoned:
            raise RuntimeError("boom")
        return apply_facts(batch, contact, sent)

    monkeypatch.setattr(ingest, "apply_facts", failing)
    return poisoned


def test_a_batch_keeps_every_event_but_the_one_that_fails(
    make_app: AppFactory, failing_event: str
) -> None:
    app, client = client_for(make_app)
    events = [cart_event(T0, cart_id=f"cart-{n}", email=f"p{n}@shop.example") for n in range(7)]
    events[4] = cart_event(T0, cart_id="cart-x", event_id=failing_event)
    response = client.post("/v1/events/batch", json={"events": events}, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["accepted"] * 4 + ["rejected"] + [
        "accepted"
    ] * 2
    assert body["results"][4]["errors"][0]["field"] == "(event)"
    with app.uow() as session:
        stored = set(session.scalars(select(Event.event_id)))
    assert stored == {e["event_id"] for e in events} - {failing_event}


def test_a_single_event_that_fails_is_a_422_and_leaves_no_row(
    make_app: AppFactory, failing_event: str
) -> None:
    app, client = client_for(make_app)
    sent = profile_event(T0, event_id=failing_event, email="new@shop.example")
    body = error_of(client.post("/v1/events", json=sent, headers=AUTH), 422)
    assert body["error"] == "not_applied"
    assert count(app, Event) == 0
    assert count(app, Contact) == 0


# --- auth before bodies, bounded bodies -----------------------------------------------------


def test_discounts_check_the_key_before_reading_the_body(make_app: AppFactory) -> None:
    _, client = client_for(make_app)
    wrong = {**JSON, "Authorization": "Bearer wrong"}
    for body in (b"{not json", DEEP, b"x" * 200_000):
        response = client.post("/v1/discounts/validate", content=body, headers=wrong)
        assert error_of(response, 401)["error"] == "unauthorized"


def test_discount_bodies_are_capped_and_errors_use_the_project_shape(
    make_app: AppFactory,
) -> None:
    _, client = client_for(make_app)
    big = json.dumps({"code": "X", "cart_total": "1.00", "currency": "EUR", "pad": "x" * 20_000})
    response = client.post("/v1/discounts/redeem", content=big, headers={**JSON, **AUTH})
    assert error_of(response, 413)["error"] == "body_too_large"
    response = client.post("/v1/discounts/validate", json={"code": "X"}, headers=AUTH)
    problems = error_of(response, 422)["detail"]
    assert {p["field"] for p in problems} == {"cart_total", "currency"}


@pytest.mark.parametrize("order_id", ["\u001f", " \u001c ", "a\u0000b", "o\u0085p"])
def test_an_id_of_separators_or_control_characters_is_a_422_naming_it(
    make_app: AppFactory, order_id: str
) -> None:
    """Found by schemathesis: Python's strip() takes U+001C-U+001F where pydantic's does
    not, so "\u001f" passed the schema and the service refused it as empty: a 500."""
    _, client = client_for(make_app)
    body = {"code": "ABCD-1234", "order_id": order_id}
    response = client.post("/v1/discounts/redeem", json=body, headers=AUTH)
    assert [p["field"] for p in error_of(response, 422)["detail"]] == ["order_id"]
    sent = {**profile_event(T0), "event_id": order_id}
    response = client.post("/v1/events", json=sent, headers=AUTH)
    assert "event_id" in json.dumps(error_of(response, 422)["detail"])


def test_a_service_refusing_input_is_a_422_never_a_500(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net under every route: our ValidationError from below a route that did not
    expect it still answers in the project's shape, naming the field."""
    from remarket_mailer.entrypoints import discounts_api
    from remarket_mailer.errors import ValidationError

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise ValidationError("order_id is empty", "order_id")

    monkeypatch.setattr(discounts_api, "redeem_code", refuse)
    _, client = client_for(make_app)
    body = {"code": "ABCD-1234", "order_id": "o-1"}
    response = client.post("/v1/discounts/redeem", json=body, headers=AUTH)
    problem = error_of(response, 422)
    assert problem["error"] == "validation_error"
    assert problem["detail"] == [{"field": "order_id", "message": "order_id is empty"}]


def test_unsubscribe_bodies_are_capped(make_app: AppFactory) -> None:
    app, client = client_for(make_app)
    token = app.links.unsubscribe_token(1, "marketing")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    big = b"List-Unsubscribe=One-Click&pad=" + b"x" * 200_000
    response = client.post(f"/u/{token}", content=big, headers=form)
    assert error_of(response, 413)["error"] == "body_too_large"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/nothing-here", 404, "not_found"),
        ("GET", "/v1/events", 405, "method_not_allowed"),
        ("DELETE", "/v1/discounts/validate", 405, "method_not_allowed"),
    ],
)
def test_routing_errors_use_the_project_shape(
    make_app: AppFactory, method: str, path: str, status: int, code: str
) -> None:
    _, client = client_for(make_app)
    assert error_of(client.request(method, path, headers=AUTH), status)["error"] == code


def test_a_content_length_that_is_not_a_number_is_a_400(make_app: AppFactory) -> None:
    _, client = client_for(make_app)
    response = client.post(
        "/v1/events", content=b"{}", headers={**JSON, **AUTH, "Content-Length": "1e3"}
    )
    assert response.status_code in (400, 413), response.text


# --- the database away ----------------------------------------------------------------------


def test_an_unreachable_database_is_a_503_with_retry_after(make_app: AppFactory) -> None:
    app, client = client_for(make_app)
    # Nothing listens on port 9: every connection is refused, as when PostgreSQL is down.
    app.uow.session_factory.configure(
        bind=create_engine(
            "postgresql+psycopg://postgres@127.0.0.1:9/test", connect_args={"connect_timeout": 2}
        )
    )
    response = client.post("/v1/events", json=profile_event(T0), headers=AUTH)
    body = error_of(response, 503)
    assert body["error"] == "unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert "127.0.0.1" not in body["message"]
