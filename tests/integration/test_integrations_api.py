"""Shop webhooks through the API: signature, mapping, ingest, idempotent redelivery."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from remarket_mailer.entrypoints.api import create_api
from tests.conftest import AppFactory
from tests.helpers import deliveries, enrollments

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SECRET = "shpss_test_secret"


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def checkout() -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(
        (FIXTURES / "shopify" / "checkouts_update.json").read_text()
    )
    payload["buyer_accepts_marketing"] = True
    return payload


def shopify_headers(body: bytes, topic: str = "checkouts/update") -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign(body),
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    }


def test_shopify_checkout_starts_the_cart_workflow_once(make_app: AppFactory) -> None:
    app = make_app(shopify_webhook_secrets=["old-secret", SECRET])
    client = TestClient(create_api(app))
    body = json.dumps(checkout()).encode()
    response = client.post("/v1/integrations/shopify", content=body, headers=shopify_headers(body))
    assert response.status_code == 200, response.text
    types = {(e["type"], e["status"]) for e in response.json()["events"]}
    assert types == {("checkout.started", "accepted"), ("consent.changed", "accepted")}
    assert [e.key for e in enrollments(app)] == ["123123123"]
    assert len(deliveries(app)) == 3
    again = client.post("/v1/integrations/shopify", content=body, headers=shopify_headers(body))
    assert {e["status"] for e in again.json()["events"]} == {"duplicate"}
    assert len(deliveries(app)) == 3


def test_shopify_bad_signature_is_401_and_changes_nothing(make_app: AppFactory) -> None:
    app = make_app(shopify_webhook_secrets=[SECRET])
    client = TestClient(create_api(app))
    body = json.dumps(checkout()).encode()
    headers = shopify_headers(body)
    tampered = body.replace(b"421.88", b"1.00")
    response = client.post("/v1/integrations/shopify", content=tampered, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "bad_signature"
    headers["X-Shopify-Hmac-Sha256"] = sign(body, "wrong")
    assert client.post("/v1/integrations/shopify", content=body, headers=headers).status_code == 401
    assert enrollments(app) == []


def test_unconfigured_integration_is_404(make_app: AppFactory) -> None:
    client = TestClient(create_api(make_app()))
    response = client.post("/v1/integrations/shopify", content=b"{}")
    assert response.status_code == 404
    assert response.json()["error"] == "not_configured"


def test_shopify_payload_missing_fields_is_400(make_app: AppFactory) -> None:
    client = TestClient(create_api(make_app(shopify_webhook_secrets=[SECRET])))
    body = json.dumps({"email": "x@example.org"}).encode()
    response = client.post(
        "/v1/integrations/shopify", content=body, headers=shopify_headers(body, "orders/create")
    )
    assert response.status_code == 400
    assert response.json()["detail"][0]["field"]


def test_woocommerce_ping_and_order(make_app: AppFactory) -> None:
    app = make_app(woocommerce_webhook_secrets=["wc-secret"])
    client = TestClient(create_api(app))
    ping = client.post(
        "/v1/integrations/woocommerce",
        content=b"webhook_id=12",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert ping.status_code == 200 and ping.json()["ping"] is True
    order = json.loads((FIXTURES / "woocommerce" / "order_727.json").read_text())
    body = json.dumps(order).encode()
    headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Topic": "order.created",
        "X-WC-Webhook-ID": "12",
        "X-WC-Webhook-Signature": sign(body, "wc-secret"),
    }
    response = client.post("/v1/integrations/woocommerce", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["events"][0]["status"] == "accepted"


def test_shopify_product_webhooks_keep_the_catalog(make_app: AppFactory) -> None:
    from remarket_mailer.db import catalog as catalog_db

    app = make_app(shopify_webhook_secrets=[SECRET], shop_url="https://shop.example")
    client = TestClient(create_api(app))
    body = (FIXTURES / "shopify" / "products_create.json").read_bytes()
    headers = {**shopify_headers(body, "products/create"), "X-Shopify-Shop-Domain": "evil.example"}
    response = client.post("/v1/integrations/shopify", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert [e["status"] for e in response.json()["events"]] == ["accepted"]
    with app.uow() as session:
        (product,) = catalog_db.products_by_id(session, ["788032119674292922"]).values()
    assert product.url == "https://shop.example/products/example-t-shirt"
    deleted = b'{"id":788032119674292922}'
    headers = {
        **shopify_headers(deleted, "products/delete"),
        "X-Shopify-Triggered-At": "2024-01-01T00:00:00Z",
    }
    response = client.post("/v1/integrations/shopify", content=deleted, headers=headers)
    assert response.status_code == 200, response.text
    with app.uow() as session:
        assert catalog_db.products_by_id(session, ["788032119674292922"]) == {}
