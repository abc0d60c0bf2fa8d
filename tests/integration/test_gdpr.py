"""GDPR export and erasure: after erasure the address is never emailed again."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from tests.conftest import T0, AppFactory
from tests.helpers import cart_event, consent_event, deliveries, post, profile_event, run_due

ADMIN = {"Authorization": "Bearer admin-key"}


def test_export_then_erase_then_never_again(make_app: AppFactory, clock: VirtualClock) -> None:
    provider = MemoryProvider()
    app = make_app(provider=provider, admin_api_keys=["admin-key"])
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0 - timedelta(minutes=5)))
    post(client, cart_event(T0))
    clock.set(T0 + timedelta(hours=1))
    run_due(app)
    assert len(provider.outbox) == 1

    assert client.get("/v1/contacts/export", params={"email": "ann@example.org"}).status_code == 401
    exported = client.get("/v1/contacts/export", params={"email": "ann@example.org"}, headers=ADMIN)
    assert exported.status_code == 200
    data = exported.json()
    assert data["contact"]["first_name"] == "Ann"
    assert len(data["events"]) == 3 and len(data["consents"]) == 1
    assert any(d["status"] == "sent" for d in data["deliveries"])

    erased = client.post("/v1/contacts/erase", json={"email": "Ann@Example.org"}, headers=ADMIN)
    assert erased.status_code == 200 and erased.json()["erased"] is True
    assert deliveries(app) == []
    missing = client.get("/v1/contacts/export", params={"email": "ann@example.org"}, headers=ADMIN)
    assert missing.status_code == 404

    # The shop sends her events again (and even a new consent): she is never emailed.
    post(client, consent_event(T0 + timedelta(days=1)))
    post(client, cart_event(T0 + timedelta(days=1), cart_id="cart-2"))
    clock.set(T0 + timedelta(days=5))
    run_due(app)
    assert len(provider.outbox) == 1
    assert {d.reason for d in deliveries(app)} == {"suppressed"}


# --- one spelling per address ---------------------------------------------------------------

NFC = "ann@exämple.org"
NFD = "ann@exa\u0308mple.org"
PUNYCODE = "ANN@xn--exmple-cua.org"
HOOK_AUTH = "hook:s3cret"


def _idn_contact(client: TestClient) -> None:
    post(client, profile_event(T0 - timedelta(minutes=5), email=NFD))
    post(client, consent_event(T0 - timedelta(minutes=5), email=NFD))
    post(client, cart_event(T0, email=NFC))


def test_an_esp_bounce_under_another_spelling_suppresses_the_contact(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    import base64
    import json

    provider = MemoryProvider()
    app = make_app(provider=provider, webhook_secrets={"postmark": HOOK_AUTH})
    client = TestClient(create_api(app))
    _idn_contact(client)
    bounce = {
        "RecordType": "Bounce",
        "Type": "HardBounce",
        "TypeCode": 1,
        "Email": PUNYCODE,
        "BouncedAt": (T0 + timedelta(minutes=10)).isoformat(),
        "Details": "smtp;550 5.1.1 no such user",
        "ID": 42,
    }
    auth = {"Authorization": "Basic " + base64.b64encode(HOOK_AUTH.encode()).decode()}
    response = client.post("/v1/webhooks/postmark", content=json.dumps(bounce), headers=auth)
    assert response.status_code == 200, response.text
    clock.set(T0 + timedelta(days=5))
    run_due(app)
    assert provider.outbox == []
    assert {(d.status, d.reason) for d in deliveries(app)} == {("skipped", "suppressed")}


def test_export_and_erase_find_the_contact_under_any_spelling(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    provider = MemoryProvider()
    app = make_app(provider=provider, admin_api_keys=["admin-key"])
    client = TestClient(create_api(app))
    _idn_contact(client)
    for spelling in (NFC, NFD, PUNYCODE):
        exported = client.get("/v1/contacts/export", params={"email": spelling}, headers=ADMIN)
        assert exported.status_code == 200, spelling
        assert exported.json()["contact"]["email"] == NFC
    erased = client.post("/v1/contacts/erase", json={"email": PUNYCODE}, headers=ADMIN)
    assert erased.status_code == 200 and erased.json()["erased"] is True
    assert deliveries(app) == []
    # She comes back under the NFD spelling: still suppressed.
    post(client, consent_event(T0 + timedelta(days=1), email=NFD))
    post(client, cart_event(T0 + timedelta(days=1), cart_id="cart-2", email=NFD))
    clock.set(T0 + timedelta(days=5))
    run_due(app)
    assert provider.outbox == []
    assert {d.reason for d in deliveries(app)} == {"suppressed"}
