"""GDPR export and erasure: after erasure the address is never emailed again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from remarket_mailer.bootstrap import App
from remarket_mailer.db import consent as consent_db
from remarket_mailer.db.models import Contact
from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from tests.conftest import T0, AppFactory
from tests.helpers import AUTH, cart_event, consent_event, deliveries, post, profile_event, run_due

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

    ann = {"email": "ann@example.org"}
    assert client.post("/v1/contacts/export", json=ann).status_code == 401
    exported = client.post("/v1/contacts/export", json=ann, headers=ADMIN)
    assert exported.status_code == 200
    data = exported.json()
    assert data["contact"]["first_name"] == "Ann"
    assert len(data["events"]) == 3 and len(data["consents"]) == 1
    assert any(d["status"] == "sent" for d in data["deliveries"])

    erased = client.post("/v1/contacts/erase", json={"email": "Ann@Example.org"}, headers=ADMIN)
    assert erased.status_code == 200 and erased.json()["erased"] is True
    assert deliveries(app) == []
    missing = client.post("/v1/contacts/export", json=ann, headers=ADMIN)
    assert missing.status_code == 404

    # The shop sends her events again (and even a new consent): she is never emailed.
    clock.set(T0 + timedelta(days=1))
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
        exported = client.post("/v1/contacts/export", json={"email": spelling}, headers=ADMIN)
        assert exported.status_code == 200, spelling
        assert exported.json()["contact"]["email"] == NFC
    erased = client.post("/v1/contacts/erase", json={"email": PUNYCODE}, headers=ADMIN)
    assert erased.status_code == 200 and erased.json()["erased"] is True
    assert deliveries(app) == []
    # She comes back under the NFD spelling: still suppressed.
    clock.set(T0 + timedelta(days=1))
    post(client, consent_event(T0 + timedelta(days=1), email=NFD))
    post(client, cart_event(T0 + timedelta(days=1), cart_id="cart-2", email=NFD))
    clock.set(T0 + timedelta(days=5))
    run_due(app)
    assert provider.outbox == []
    assert {d.reason for d in deliveries(app)} == {"suppressed"}


# --- consent ordering -----------------------------------------------------------------------


def _contact_id(app: App, email: str = "ann@example.org") -> int:
    with app.uow() as session:
        return int(session.scalars(select(Contact.id).where(Contact.email == email)).one())


def test_a_grant_stamped_in_2030_is_refused_naming_occurred_at(make_app: AppFactory) -> None:
    client = TestClient(create_api(make_app()))
    response = post(client, consent_event(datetime(2030, 1, 1, tzinfo=UTC)), expect=422)
    assert response["detail"][0]["field"] == "occurred_at"
    assert "future" in response["detail"][0]["message"]
    batch = client.post(
        "/v1/events/batch",
        json={"events": [consent_event(datetime(2030, 1, 1, tzinfo=UTC)), cart_event(T0)]},
        headers=AUTH,
    ).json()
    assert (batch["rejected"], batch["accepted"]) == (1, 1)
    assert batch["results"][0]["errors"][0]["field"] == "occurred_at"


def test_one_click_unsubscribe_wins_over_a_grant_stamped_ahead_of_our_clock(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    provider = MemoryProvider()
    app = make_app(provider=provider)
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0 + timedelta(minutes=4)))  # the shop's clock runs fast
    post(client, cart_event(T0))
    clock.set(T0 + timedelta(minutes=1))
    token = app.links.unsubscribe_token(_contact_id(app), "marketing")
    page = client.post(
        f"/u/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    # The contact's locale is nl: "You will not get marketing email again", in Dutch.
    assert page.status_code == 200 and (
        "Je ontvangt deze e-mails niet meer: aanbiedingen en nieuws." in page.text
    )
    # A new cart a day later: consent is read again at send time, and the opt-out holds.
    clock.set(T0 + timedelta(days=1))
    post(client, cart_event(T0 + timedelta(days=1), cart_id="cart-2"))
    clock.set(T0 + timedelta(days=5))
    run_due(app)
    assert provider.outbox == []


def test_a_withdrawal_event_wins_over_the_grant_that_arrived_before_it(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    provider = MemoryProvider()
    app = make_app(provider=provider)
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0))
    post(client, cart_event(T0))
    # The shop forwards an opt-out it recorded before the grant reached us: it still counts.
    clock.set(T0 + timedelta(minutes=10))
    post(client, consent_event(T0 - timedelta(hours=1), status="withdrawn"))
    clock.set(T0 + timedelta(days=5))
    run_due(app)
    assert provider.outbox == []
    assert {d.reason for d in deliveries(app)} == {"consent_withdrawn"}


# --- erase scrubs every free-text column --------------------------------------------------


def _every_text_value(app: App) -> list[tuple[str, str, str]]:
    """(table, column, value as text) for every string, text and JSON value in the database."""
    from sqlalchemy import JSON, String, Text

    from remarket_mailer.db.models import Base

    found = []
    with app.uow() as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
            for row in session.execute(select(*columns)):
                for column, value in zip(columns, row, strict=True):
                    if value is not None:
                        found.append((table.name, column.name, str(value)))
    return found


def test_erase_leaves_the_address_in_no_text_column(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    import base64
    import json

    from remarket_mailer.services.webhooks import record_engagement

    address = "zelda.quinn@example.org"
    provider = MemoryProvider()
    app = make_app(
        provider=provider, admin_api_keys=["admin-key"], webhook_secrets={"postmark": HOOK_AUTH}
    )
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5), email=address))
    post(client, consent_event(T0 - timedelta(minutes=5), email=address))
    checkout = f"https://shop.example/checkout/cart-1?email={address}"
    post(client, {**cart_event(T0, email=address), "checkout_url": checkout})
    clock.set(T0 + timedelta(hours=1))
    run_due(app)
    sent = next(d for d in deliveries(app) if d.status == "sent")
    assert record_engagement(app.uow, app.clock, sent.id, "clicked", checkout)
    bounce = {
        "RecordType": "Bounce",
        "Type": "HardBounce",
        "TypeCode": 1,
        "Email": address,
        "BouncedAt": (T0 + timedelta(hours=1, minutes=2)).isoformat(),
        "Details": f"smtp;550 5.1.1 <{address}>: Recipient address rejected: User unknown",
        "Metadata": {"delivery_id": str(sent.id)},
        "ID": 7,
    }
    auth = {"Authorization": "Basic " + base64.b64encode(HOOK_AUTH.encode()).decode()}
    hook = client.post("/v1/webhooks/postmark", content=json.dumps(bounce), headers=auth)
    assert hook.status_code == 200 and hook.json()["suppressed"] == 1
    assert any("zelda.quinn" in value for _, _, value in _every_text_value(app))

    erased = client.post("/v1/contacts/erase", json={"email": address}, headers=ADMIN)
    assert erased.status_code == 200 and erased.json()["erased"] is True
    leftovers = [
        (table, column)
        for table, column, value in _every_text_value(app)
        if "zelda.quinn" in value.lower() or "zelda.quinn%40" in value.lower()
    ]
    assert leftovers == []
    # Only the hash is left, and it still suppresses her.
    with app.uow() as session:
        assert consent_db.suppressions_for(session, [address]) == {address: "hard_bounce"}


# --- erasing an unknown address says so ---------------------------------------------------


def test_erasing_an_unknown_address_says_nothing_was_found_and_it_is_suppressed(
    make_app: AppFactory,
) -> None:
    client = TestClient(create_api(make_app(admin_api_keys=["admin-key"])))
    first = client.post("/v1/contacts/erase", json={"email": "Nobody@Example.org"}, headers=ADMIN)
    assert first.status_code == 200
    body = first.json()
    assert (body["found"], body["erased"], body["suppressed"]) == (False, False, True)
    assert body["already_suppressed"] is False and body["deleted"] == {}
    assert body["message"].startswith("No contact has the address nobody@example.org")
    again = client.post("/v1/contacts/erase", json={"email": "nobody@example.org"}, headers=ADMIN)
    assert again.json()["already_suppressed"] is True
    assert "was already on the suppression list" in again.json()["message"]


# --- an erased person's links never act on someone else -------------------------------------


def test_an_erased_contacts_old_unsubscribe_link_does_not_touch_the_next_contact(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    provider = MemoryProvider()
    app = make_app(provider=provider, admin_api_keys=["admin-key"])
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0 - timedelta(minutes=5)))
    post(client, cart_event(T0))
    clock.set(T0 + timedelta(hours=1))
    run_due(app)
    (first,) = deliveries(app)[:1]
    old_token = app.links.unsubscribe_token(first.contact_id, "marketing", first.id)
    assert client.post("/v1/contacts/erase", json={"email": "ann@example.org"}, headers=ADMIN)
    # Bob is the next contact: on SQLite without AUTOINCREMENT he got Ann's id.
    bob = "bob@example.org"
    post(client, profile_event(T0 + timedelta(hours=1), email=bob))
    post(client, consent_event(T0 + timedelta(hours=1), email=bob))
    post(client, cart_event(T0 + timedelta(hours=1), email=bob, cart_id="cart-bob"))
    page = client.post(
        f"/u/{old_token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert page.status_code == 200
    clock.set(T0 + timedelta(hours=2, minutes=5))
    run_due(app)
    assert [bob in m.to_addr for m in provider.outbox] == [False, True]
    bob_id = _contact_id(app, bob)
    with app.uow() as session:
        consents = consent_db.latest_consents(session, [bob_id], ["marketing"])
    assert consents == {(bob_id, "marketing"): "granted"}


# --- the address travels in a body, never in a URL ------------------------------------------


def test_export_takes_the_address_in_a_post_body_and_refuses_the_query_string(
    make_app: AppFactory,
) -> None:
    app = make_app(admin_api_keys=["admin-key"])
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    by_query = client.get("/v1/contacts/export", params={"email": "ann@example.org"}, headers=ADMIN)
    assert by_query.status_code == 405 and by_query.headers["allow"] == "POST"
    assert by_query.json()["error"] == "method_not_allowed"
    assert "POST /v1/contacts/export" in by_query.json()["message"]
    exported = client.post("/v1/contacts/export", json={"email": "ann@example.org"}, headers=ADMIN)
    assert exported.status_code == 200 and exported.json()["contact"]["first_name"] == "Ann"
    for body, status in [({"email": "no-at-sign"}, 422), ({}, 422), ([1], 422)]:
        response = client.post("/v1/contacts/export", json=body, headers=ADMIN)
        assert response.status_code == status
        assert response.json()["detail"][0]["field"] == "email"
    wrong_type = client.post("/v1/contacts/export", content=b"email=x", headers=ADMIN)
    assert wrong_type.status_code == 415
    spec = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/contacts/export", "/v1/contacts/erase"):
        operation = spec[path]["post"]
        assert operation["requestBody"]["content"]["application/json"]["schema"]["required"] == [
            "email"
        ]
        assert {"400", "401", "413", "415", "422"} <= set(operation["responses"])
    assert "404" in spec["/v1/contacts/export"]["post"]["responses"]
    assert "get" not in spec["/v1/contacts/export"]
