"""The engine end to end through the real API and services, on SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from remarket_mailer.bootstrap import App
from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from tests.conftest import ROOT, T0, AppFactory
from tests.helpers import (
    AUTH,
    arrive,
    cart_event,
    consent_event,
    contacts,
    deliveries,
    enrollments,
    event,
    order_event,
    post,
    profile_event,
    run_due,
)


@pytest.fixture
def provider() -> MemoryProvider:
    return MemoryProvider()


@pytest.fixture
def app(make_app: AppFactory, provider: MemoryProvider, cart_only: Path) -> App:
    return make_app(provider=provider, workflows_dir=cart_only)


@pytest.fixture
def client(app: App) -> TestClient:
    return TestClient(create_api(app))


def at(clock: VirtualClock, delta: timedelta) -> None:
    clock.set(T0 + delta)


def subscribe_ann(client: TestClient) -> None:
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0 - timedelta(minutes=5)))


def test_abandoned_cart_three_reminders(
    app: App, client: TestClient, clock: VirtualClock, provider: MemoryProvider
) -> None:
    subscribe_ann(client)
    result = post(client, cart_event(T0))
    assert result["enrollments_started"] == ["abandoned_cart"]

    at(clock, timedelta(minutes=59))
    run_due(app)
    assert provider.outbox == []

    at(clock, timedelta(hours=1))
    run_due(app)
    assert len(provider.outbox) == 1
    first = provider.outbox[0]
    assert first.to_addr == "Ann <ann@example.org>"
    assert first.subject == "Ann, je hebt iets in je winkelwagen laten liggen"  # locale nl
    assert first.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert first.headers["List-Unsubscribe"].startswith("<https://mail.shop.example/u/")

    at(clock, timedelta(hours=24))
    run_due(app)
    second = provider.outbox[1]
    rows = deliveries(app)
    code = rows[1].discount_code
    assert code and code.startswith("CART-")
    assert code in second.html and code in second.text
    assert "10%" in second.subject

    at(clock, timedelta(hours=72))
    run_due(app)
    third = provider.outbox[2]
    assert rows[1].discount_code not in third.text, "the last step gets its own, bigger code"
    assert "15%" in third.subject
    assert [d.status for d in deliveries(app)] == ["sent"] * 3
    assert [e.status for e in enrollments(app)] == ["completed"]


def test_order_for_the_cart_stops_later_reminders(
    app: App, client: TestClient, clock: VirtualClock, provider: MemoryProvider
) -> None:
    subscribe_ann(client)
    post(client, cart_event(T0))
    at(clock, timedelta(hours=1))
    run_due(app)
    assert len(provider.outbox) == 1

    at(clock, timedelta(hours=3))
    result = post(client, order_event(T0 + timedelta(hours=3)))
    assert result["enrollments_exited"] == 1

    at(clock, timedelta(days=5))
    run_due(app)
    assert len(provider.outbox) == 1
    statuses = [(d.step_id, d.status, d.reason) for d in deliveries(app)]
    assert statuses == [
        ("reminder_1", "sent", None),
        ("reminder_2", "skipped", "exited"),
        ("last_chance", "skipped", "exited"),
    ]
    assert enrollments(app)[0].status == "exited"


def test_any_order_by_the_contact_also_exits(
    app: App, client: TestClient, clock: VirtualClock, provider: MemoryProvider
) -> None:
    subscribe_ann(client)
    arrive(client, clock, cart_event(T0))
    arrive(client, clock, order_event(T0 + timedelta(minutes=30), cart_id=None))
    at(clock, timedelta(days=5))
    run_due(app)
    assert provider.outbox == []


def test_an_exit_condition_decides_which_orders_exit(
    make_app: AppFactory, clock: VirtualClock, tmp_path: Path
) -> None:
    """The exit rule's ``condition`` is evaluated on the exit event: a small order by the
    contact leaves the reminders running, a large one ends them."""
    stock = (ROOT / "workflows" / "abandoned_cart.yaml").read_text()
    rule = "  - event: order.placed   # or any order by the same contact\n    match: contact\n"
    assert rule in stock
    (tmp_path / "abandoned_cart.yaml").write_text(
        stock.replace(rule, rule + "    condition: event.total >= 100\n")
    )
    provider = MemoryProvider()
    app = make_app(provider=provider, workflows_dir=tmp_path)
    client = TestClient(create_api(app))
    subscribe_ann(client)
    arrive(client, clock, cart_event(T0))
    small = arrive(client, clock, order_event(T0 + timedelta(minutes=10), cart_id=None))
    assert small["enrollments_exited"] == 0
    at(clock, timedelta(hours=1))
    run_due(app)
    assert len(provider.outbox) == 1
    large = arrive(
        client, clock, order_event(T0 + timedelta(hours=2), cart_id=None, total="120.00")
    )
    assert large["enrollments_exited"] == 1
    at(clock, timedelta(days=5))
    run_due(app)
    assert len(provider.outbox) == 1


def test_older_order_does_not_exit_a_newer_cart(
    app: App, client: TestClient, clock: VirtualClock, provider: MemoryProvider
) -> None:
    subscribe_ann(client)
    post(client, cart_event(T0))
    # A late-arriving order from last week (other cart) must not end this cart's reminders.
    post(client, order_event(T0 - timedelta(days=7), cart_id="old-cart"))
    at(clock, timedelta(hours=1))
    run_due(app)
    assert len(provider.outbox) == 1


def test_late_cart_event_after_its_order_starts_nothing(
    app: App, client: TestClient, clock: VirtualClock, provider: MemoryProvider
) -> None:
    subscribe_ann(client)
    arrive(client, clock, order_event(T0 + timedelta(minutes=10)))
    result = arrive(client, clock, cart_event(T0))  # older, arrives later
    assert result["enrollments_started"] == []
    at(clock, timedelta(days=4))
    run_due(app)
    assert provider.outbox == []


def test_cart_below_minimum_is_ignored(app: App, client: TestClient) -> None:
    subscribe_ann(client)
    result = post(client, cart_event(T0, total="9.99"))
    assert result["enrollments_started"] == []
    assert deliveries(app) == []


def test_cart_update_moves_pending_reminders(
    app: App, client: TestClient, clock: VirtualClock, provider: MemoryProvider
) -> None:
    subscribe_ann(client)
    arrive(client, clock, cart_event(T0))
    result = arrive(client, clock, cart_event(T0 + timedelta(minutes=40), total="99.00"))
    assert result["enrollments_refreshed"] == ["abandoned_cart"]
    at(clock, timedelta(hours=1, minutes=30))
    run_due(app)
    assert provider.outbox == []  # due 1 h after the newest activity, at 1h40
    at(clock, timedelta(hours=1, minutes=40))
    run_due(app)
    assert len(provider.outbox) == 1
    assert "99,00" in provider.outbox[0].text  # the newest cart is what gets shown


def test_replayed_event_is_a_no_op_and_a_changed_body_conflicts(
    app: App, client: TestClient
) -> None:
    subscribe_ann(client)
    body = cart_event(T0)
    assert post(client, body)["duplicate"] is False
    again = post(client, body, expect=200)
    assert again["duplicate"] is True
    assert len(deliveries(app)) == 3
    changed = dict(body, total="80.00")
    response = client.post("/v1/events", json=changed, headers=AUTH)
    assert response.status_code == 409
    assert "different" in response.json()["message"]
    assert len(deliveries(app)) == 3


def test_without_consent_nothing_is_sent(
    app: App, client: TestClient, clock: VirtualClock, provider: MemoryProvider
) -> None:
    post(client, profile_event(T0))
    post(client, cart_event(T0))
    at(clock, timedelta(hours=1))
    run_due(app)
    assert provider.outbox == []
    assert (deliveries(app)[0].status, deliveries(app)[0].reason) == ("skipped", "no_consent")


def test_unsubscribe_event_skips_pending_at_once(
    app: App, client: TestClient, clock: VirtualClock, provider: MemoryProvider
) -> None:
    subscribe_ann(client)
    arrive(client, clock, cart_event(T0))
    arrive(client, clock, event("contact.unsubscribed", T0 + timedelta(minutes=5)))
    assert {(d.status, d.reason) for d in deliveries(app)} == {("skipped", "suppressed")}
    # A new cart later: enrolled, but suppression is checked again at send time.
    arrive(client, clock, cart_event(T0 + timedelta(days=1), cart_id="cart-2"))
    at(clock, timedelta(days=1, hours=1))
    run_due(app)
    assert provider.outbox == []


def test_one_click_unsubscribe_stops_the_next_reminder(
    app: App, client: TestClient, clock: VirtualClock, provider: MemoryProvider
) -> None:
    subscribe_ann(client)
    post(client, cart_event(T0))
    at(clock, timedelta(hours=1))
    run_due(app)
    header = provider.outbox[0].headers["List-Unsubscribe"]
    url = header.split(">")[0].lstrip("<")
    path = url.removeprefix("https://mail.shop.example")
    # The mailto form carries the same token, in a subject that reads "unsubscribe <token>".
    token = path.removeprefix("/u/")
    assert header.endswith(f"?subject=unsubscribe%20{token}>")
    # What Gmail sends (RFC 8058): a POST with no cookies and no auth.
    response = client.post(
        path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert response.status_code == 200
    assert [(d.status, d.reason) for d in deliveries(app)][1:] == [
        ("skipped", "consent_withdrawn"),
        ("skipped", "consent_withdrawn"),
    ]
    at(clock, timedelta(days=4))
    run_due(app)
    assert len(provider.outbox) == 1
    # GET (a link scanner) never unsubscribes; a tampered token is a clear 400.
    assert client.get(path).status_code == 200
    assert client.post(path[:-3] + "xyz").status_code == 400


def test_lost_broker_message_is_sent_once_after_the_lease(
    app: App, client: TestClient, clock: VirtualClock, provider: MemoryProvider
) -> None:
    from remarket_mailer.services.dispatch import dispatch_due

    subscribe_ann(client)
    post(client, cart_event(T0))
    at(clock, timedelta(hours=1))
    lost: list[list[int]] = []
    report = dispatch_due(app.uow, app.clock, lambda ids: lost.append(list(ids)))
    assert report.claimed == 1 and deliveries(app)[0].status == "queued"
    run_due(app)  # lease not expired yet: nothing happens
    assert provider.outbox == []
    at(clock, timedelta(hours=1, minutes=6))
    report = run_due(app)
    assert report.reclaimed == 1
    assert len(provider.outbox) == 1
    # The stale message finally arrives: the row is no longer 'queued', nothing is sent again.
    app.delivery.send(lost[0])
    assert len(provider.outbox) == 1


def test_api_rejects_bad_input_with_json(client: TestClient, app: App) -> None:
    body = cart_event(T0)
    assert client.post("/v1/events", json=body).status_code == 401
    assert (
        client.post("/v1/events", json=body, headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    response = client.post(
        "/v1/events", content=b"{", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_json"
    response = client.post(
        "/v1/events", content=b"x", headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    big = b'{"pad": "' + b"x" * 1_000_001 + b'"}'
    response = client.post(
        "/v1/events", content=big, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    response = client.post("/v1/events", json=dict(body, total=74.5), headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "total"
    assert deliveries(app) == []


def test_stale_step_is_skipped_never_sent_late(
    app: App, client: TestClient, clock: VirtualClock, provider: MemoryProvider
) -> None:
    subscribe_ann(client)
    post(client, cart_event(T0))
    at(clock, timedelta(hours=24))  # the workers were down for a day
    run_due(app)
    rows = deliveries(app)
    assert (rows[0].status, rows[0].reason) == ("skipped", "expired")
    assert (rows[1].status, len(provider.outbox)) == ("sent", 1)


def test_health(client: TestClient) -> None:
    response = client.get("/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_file_provider_writes_real_messages(
    make_app: AppFactory, clock: VirtualClock, tmp_path: object
) -> None:
    from pathlib import Path

    outbox = Path(str(tmp_path)) / "outbox"
    app = make_app(provider=None, provider_url=f"file://{outbox}")
    client = TestClient(create_api(app))
    subscribe_ann(client)
    post(client, cart_event(T0))
    at(clock, timedelta(hours=1))
    run_due(app)
    at(clock, timedelta(hours=24))
    run_due(app)
    files = sorted(outbox.glob("*.eml"))
    assert len(files) == 2
    parsed = email.message_from_bytes(files[1].read_bytes(), policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(("plain",))
    assert text is not None and deliveries(app)[1].discount_code in text.get_content()


def test_holdout_contacts_get_no_email_and_no_code(
    make_app: AppFactory, clock: VirtualClock, tmp_path: Path
) -> None:
    from remarket_mailer.domain.experiments import in_holdout

    stock = (ROOT / "workflows" / "abandoned_cart.yaml").read_text()
    (tmp_path / "abandoned_cart.yaml").write_text(
        stock.replace("priority: 50", "priority: 50\nholdout_percent: 50")
    )
    provider = MemoryProvider()
    app = make_app(provider=provider, workflows_dir=tmp_path)
    client = TestClient(create_api(app))
    people = [f"p{n}@example.org" for n in range(12)]
    held = {p for p in people if in_holdout(p, "abandoned_cart", 50)}
    assert 0 < len(held) < len(people)
    for who in people:
        post(client, consent_event(T0 - timedelta(minutes=1), email=who))
        post(client, cart_event(T0, cart_id=f"c-{who}", contact={"email": who}))
    at(clock, timedelta(hours=1))
    run_due(app)
    at(clock, timedelta(hours=24))
    run_due(app)
    recipients = {m.to_addr for m in provider.outbox}
    assert recipients == set(people) - held
    skipped = [d for d in deliveries(app) if d.reason == "holdout"]
    assert len(skipped) == 2 * len(held) and all(d.discount_code is None for d in skipped)


def test_the_holdout_is_only_contacts_who_would_have_been_mailed(
    make_app: AppFactory, clock: VirtualClock, tmp_path: Path
) -> None:
    """A held-out contact without consent is skipped for consent, not counted as held out:
    the control group must be like the treated group, which only holds people we may mail."""
    from remarket_mailer.domain.experiments import in_holdout

    stock = (ROOT / "workflows" / "abandoned_cart.yaml").read_text()
    (tmp_path / "abandoned_cart.yaml").write_text(
        stock.replace("priority: 50", "priority: 50\nholdout_percent: 50")
    )
    app = make_app(provider=MemoryProvider(), workflows_dir=tmp_path)
    client = TestClient(create_api(app))
    people = [f"q{n}@example.org" for n in range(12)]
    held = [p for p in people if in_holdout(p, "abandoned_cart", 50)]
    assert len(held) >= 2
    consenting, silent = held[0], held[1]
    post(client, consent_event(T0 - timedelta(minutes=1), email=consenting))
    for who in (consenting, silent):
        post(client, cart_event(T0, cart_id=f"c-{who}", contact={"email": who}))
    at(clock, timedelta(hours=1))
    run_due(app)
    first = {(d.contact_id, d.reason) for d in deliveries(app) if d.step_id == "reminder_1"}
    assert sorted(reason for _, reason in first) == ["holdout", "no_consent"]


def test_edits_affect_new_enrollments_only_and_disabling_stops_pending(
    database_url: str, clock: VirtualClock, tmp_path: Path
) -> None:
    from dramatiq.brokers.stub import StubBroker

    from remarket_mailer.bootstrap import build_app
    from tests.conftest import make_settings

    stock = (ROOT / "workflows" / "abandoned_cart.yaml").read_text()
    workflow_file = tmp_path / "abandoned_cart.yaml"
    workflow_file.write_text(stock)

    def start(provider: MemoryProvider) -> tuple[App, TestClient]:
        settings = make_settings(database_url=database_url, workflows_dir=tmp_path)
        app = build_app(settings, clock=clock, provider=provider, broker=StubBroker())
        return app, TestClient(create_api(app))

    provider = MemoryProvider()
    app, client = start(provider)
    for who in ("old@example.org", "new@example.org"):
        post(client, consent_event(T0 - timedelta(minutes=1), email=who))
    post(client, cart_event(T0, cart_id="c-old", contact={"email": "old@example.org"}))
    app.close()

    # The marketer raises the second reminder's code from 10 % to 12 %.
    workflow_file.write_text(stock.replace("percent: 10", "percent: 12"))
    app, client = start(provider)
    post(client, cart_event(T0, cart_id="c-new", contact={"email": "new@example.org"}))
    at(clock, timedelta(hours=1))
    run_due(app)
    at(clock, timedelta(hours=24))
    run_due(app)
    subjects = {m.to_addr: m.subject for m in provider.outbox if m.tags["step"] == "reminder_2"}
    assert "10%" in subjects["old@example.org"]
    assert "12%" in subjects["new@example.org"]
    app.close()

    # Disabling the workflow stops every pending delivery, of every version.
    workflow_file.write_text(stock.replace("enabled: true", "enabled: false"))
    app, _client = start(provider)
    at(clock, timedelta(hours=72))
    run_due(app)
    last = [d for d in deliveries(app) if d.step_id == "last_chance"]
    assert [(d.status, d.reason) for d in last] == [("skipped", "workflow_disabled")] * 2
    app.close()


def test_ab_variant_is_recorded_and_used(
    make_app: AppFactory, clock: VirtualClock, tmp_path: Path
) -> None:
    stock = (ROOT / "workflows" / "abandoned_cart.yaml").read_text()
    (tmp_path / "abandoned_cart.yaml").write_text(
        stock.replace(
            "    template: abandoned_cart/reminder_1\n",
            "    template: abandoned_cart/reminder_1\n"
            "    variants:\n"
            "      - {id: gentle, template: abandoned_cart/reminder_1}\n"
            "      - {id: bold, template: abandoned_cart/last_chance}\n",
        )
    )
    provider = MemoryProvider()
    app = make_app(provider=provider, workflows_dir=tmp_path)
    client = TestClient(create_api(app))
    people = [f"v{n}@example.org" for n in range(10)]
    for who in people:
        post(client, consent_event(T0 - timedelta(minutes=1), email=who))
        post(client, cart_event(T0, cart_id=f"c-{who}", contact={"email": who}))
    at(clock, timedelta(hours=1))
    run_due(app)
    first = [d for d in deliveries(app) if d.step_id == "reminder_1"]
    assert {d.variant for d in first} == {"gentle", "bold"}
    for delivery in first:
        expected = {"gentle": "abandoned_cart/reminder_1", "bold": "abandoned_cart/last_chance"}
        assert delivery.template == expected[delivery.variant or ""]
    bold = {d.contact_id for d in first if d.variant == "bold"}
    subjects = [m.subject for m in provider.outbox]
    assert sum("last chance" in s.lower() for s in subjects) == len(bold)


def test_preference_page_lists_topics_and_unsubscribes_the_chosen_ones(
    app: App, client: TestClient, clock: VirtualClock, provider: MemoryProvider
) -> None:
    subscribe_ann(client)
    post(client, cart_event(T0))
    at(clock, timedelta(hours=1))
    run_due(app)
    url = provider.outbox[0].headers["List-Unsubscribe"].split(">")[0].lstrip("<")
    path = url.removeprefix("https://mail.shop.example")
    page = client.get(path)
    assert page.status_code == 200 and 'name="topics" value="marketing"' in page.text
    response = client.post(
        path,
        data={"topics": ["marketing"]},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    # Ann's locale is nl: the confirmation names the topic she left in Dutch ("marketing email").
    assert (
        response.status_code == 200 and "e-mails niet meer: aanbiedingen en nieuws" in response.text
    )
    assert {d.reason for d in deliveries(app) if d.status == "skipped"} == {"consent_withdrawn"}


def test_metrics_count_what_happened(app: App, client: TestClient) -> None:
    subscribe_ann(client)
    post(client, cart_event(T0))
    from prometheus_client import generate_latest

    # What the metrics port serves (the public API has no /metrics: test_exposure.py).
    text = generate_latest().decode()
    assert 'remarket_events_total{outcome="accepted",type="cart.updated"}' in text


def test_a_step_condition_branches_on_a_click_of_the_previous_email(
    make_app: AppFactory, clock: VirtualClock, tmp_path: Path
) -> None:
    """clicked but did not buy → the second reminder; not clicked (or only a link scanner
    clicked) → not."""
    from remarket_mailer.services.webhooks import record_engagement

    stock = (ROOT / "workflows" / "abandoned_cart.yaml").read_text()
    step = "  - id: reminder_2\n"
    assert step in stock
    (tmp_path / "abandoned_cart.yaml").write_text(
        stock.replace(step, step + "    condition: previous.clicked\n")
    )
    provider = MemoryProvider()
    app = make_app(provider=provider, workflows_dir=tmp_path)
    client = TestClient(create_api(app))
    people = ["clicker@example.org", "reader@example.org", "scanned@example.org"]
    for who in people:
        post(client, consent_event(T0 - timedelta(minutes=1), email=who))
        post(client, cart_event(T0, cart_id=f"c-{who}", contact={"email": who}))
    at(clock, timedelta(hours=1))
    run_due(app)
    first = {d.contact_id: d.id for d in deliveries(app) if d.step_id == "reminder_1"}
    by_email = {m.to_addr: m.tags["delivery_id"] for m in provider.outbox}
    assert len(first) == 3
    phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"
    at(clock, timedelta(hours=3))
    record_engagement(app.uow, app.clock, int(by_email[people[0]]), "clicked", "u", phone)
    record_engagement(app.uow, app.clock, int(by_email[people[1]]), "opened", None, phone)
    record_engagement(app.uow, app.clock, int(by_email[people[2]]), "clicked", "u", "Barracuda")
    at(clock, timedelta(hours=25))
    run_due(app)
    second = [m.to_addr for m in provider.outbox if m.tags["step"] == "reminder_2"]
    assert second == [people[0]]
    skipped = [
        d.reason for d in deliveries(app) if d.step_id == "reminder_2" and d.status == "skipped"
    ]
    assert skipped == ["condition_false", "condition_false"]


def test_an_ab_test_with_a_winner_rule_stops_and_sends_the_winner(
    make_app: AppFactory, clock: VirtualClock, tmp_path: Path
) -> None:
    from remarket_mailer.services.experiments import decide_winners

    stock = (ROOT / "workflows" / "abandoned_cart.yaml").read_text()
    (tmp_path / "abandoned_cart.yaml").write_text(
        stock.replace(
            "    template: abandoned_cart/reminder_1\n",
            "    template: abandoned_cart/reminder_1\n"
            "    variants:\n"
            "      - {id: gentle, template: abandoned_cart/reminder_1}\n"
            "      - {id: bold, template: abandoned_cart/last_chance}\n"
            "    winner: {after: 15, alpha: 0.05}\n",
        )
    )
    app = make_app(provider=MemoryProvider(), workflows_dir=tmp_path)
    client = TestClient(create_api(app))
    people = [f"w{n}@example.org" for n in range(60)]
    for who in people:
        post(client, consent_event(T0 - timedelta(minutes=1), email=who))
        post(client, cart_event(T0, cart_id=f"c-{who}", contact={"email": who}))
    at(clock, timedelta(hours=1))
    run_due(app)
    first = {d.contact_id: d.variant for d in deliveries(app) if d.step_id == "reminder_1"}
    by_contact = {c.id: c.email for c in contacts(app)}
    bold = [by_contact[c] for c, v in first.items() if v == "bold"]
    gentle = [by_contact[c] for c, v in first.items() if v == "gentle"]
    assert len(bold) >= 15 and len(gentle) >= 15
    at(clock, timedelta(hours=2))
    for n, who in enumerate(bold[:-2] + gentle[:1]):  # bold converts, gentle hardly
        post(
            client, order_event(T0 + timedelta(hours=2), email=who, cart_id=None, order_id=f"w-{n}")
        )
    workflows = list(app.workflows.workflows.values())
    at(clock, timedelta(days=3))
    early = decide_winners(app.uow, workflows, app.clock)
    assert [d.decision.winner for d in early] == [None]  # the lift window has not run yet
    assert "waiting for 15 recipients" in early[0].decision.reason
    at(clock, timedelta(days=6, hours=2))
    (decided,) = decide_winners(app.uow, workflows, app.clock)
    assert (decided.decision.winner, decided.recorded) == ("bold", True)
    assert decide_winners(app.uow, workflows, app.clock) == []  # decided once, kept
    newcomers = [f"late{n}@example.org" for n in range(8)]
    for who in newcomers:
        arrive(client, clock, consent_event(T0 + timedelta(days=6, hours=2), email=who))
        arrive(client, clock, cart_event(T0 + timedelta(days=6, hours=2), cart_id=f"n-{who}",
                                         contact={"email": who}))  # fmt: skip
    late = {d.variant for d in deliveries(app) if d.step_id == "reminder_1" and d.contact_id
            not in first}  # fmt: skip
    assert late == {"bold"}
