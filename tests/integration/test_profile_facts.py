"""Profile facts: the newest occurred_at wins, and a replayed shop webhook is a duplicate."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from remarket_mailer.bootstrap import App
from remarket_mailer.db.models import Contact
from remarket_mailer.entrypoints.api import create_api
from tests.conftest import T0, AppFactory
from tests.helpers import post, profile_event

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shopify"
SECRET = "shpss_test_secret"


def _contact(app: App) -> Contact:
    with app.uow() as session:
        return session.scalars(select(Contact)).one()


def _customer(first_name: str, updated_at: str) -> bytes:
    payload: dict[str, Any] = json.loads((FIXTURES / "customers_update.json").read_text())
    payload.update(first_name=first_name, updated_at=updated_at)
    return json.dumps(payload).encode()


def _deliver(client: TestClient, body: bytes) -> dict[str, Any]:
    """POST a signed customers/update, each time under a new X-Shopify-Webhook-Id."""
    signature = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest())
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "customers/update",
        "X-Shopify-Hmac-Sha256": signature.decode(),
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
    }
    response = client.post("/v1/integrations/shopify", content=body, headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_a_replayed_shopify_customer_update_under_a_new_webhook_id_is_a_duplicate(
    make_app: AppFactory,
) -> None:
    app = make_app(shopify_webhook_secrets=[SECRET])
    client = TestClient(create_api(app))
    old = _customer("Bobby", "2026-11-01T10:00:00+00:00")
    new = _customer("Robert", "2026-11-01T11:00:00+00:00")
    assert _deliver(client, old)["events"][0]["status"] == "accepted"
    assert _deliver(client, new)["events"][0]["status"] == "accepted"
    replay = _deliver(client, old)
    assert replay["events"][0]["status"] == "duplicate"
    assert _contact(app).first_name == "Robert"


def test_an_older_profile_event_does_not_set_the_name_back(make_app: AppFactory) -> None:
    app = make_app()
    client = TestClient(create_api(app))
    post(client, profile_event(T0, first_name="Annie", locale="nl", timezone=None))
    # A late webhook from an hour earlier: its name is stale, its time zone is news.
    post(
        client,
        profile_event(
            T0 - timedelta(hours=1), first_name="Ann", locale="en", timezone="Europe/Paris"
        ),
    )
    contact = _contact(app)
    assert (contact.first_name, contact.locale, contact.timezone) == (
        "Annie",
        "nl",
        "Europe/Paris",
    )
    post(client, profile_event(T0 + timedelta(minutes=1), first_name="Anna"))
    assert _contact(app).first_name == "Anna"
