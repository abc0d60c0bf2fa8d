"""Ingest rules: batches with per-event results, idempotency under concurrency, ordering."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

from fastapi.testclient import TestClient
from sqlalchemy import select

from remarket_mailer.bootstrap import App
from remarket_mailer.db.engine import PREASSIGN_FROM
from remarket_mailer.db.models import Cart, Contact
from remarket_mailer.db.sql import COPY_FROM
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from remarket_mailer.errors import ConflictError
from remarket_mailer.schemas import parse_event
from remarket_mailer.services.ingest import IngestResult, ingest_event
from tests.conftest import T0, AppFactory
from tests.helpers import (
    AUTH,
    cart_event,
    consent_event,
    deliveries,
    enrollments,
    order_event,
    profile_event,
)


def test_batch_reports_each_event_and_keeps_the_good_ones(make_app: AppFactory) -> None:
    app = make_app()
    client = TestClient(create_api(app))
    consent = consent_event(T0 - timedelta(minutes=1))
    first = cart_event(T0, cart_id="cart-a")
    bad = cart_event(T0, cart_id="cart-b", total=12.5)
    conflict = dict(first, total="99.00")
    batch = [
        consent,
        first,
        bad,
        first,
        conflict,
        "not an object",
        cart_event(T0, cart_id="cart-c"),
    ]
    response = client.post("/v1/events/batch", json={"events": batch}, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == [
        "accepted",
        "accepted",
        "rejected",
        "duplicate",
        "rejected",
        "rejected",
        "accepted",
    ]
    assert body["results"][2]["errors"][0]["field"] == "total"
    assert "different" in body["results"][4]["errors"][0]["message"]
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (3, 1, 3)
    assert sorted(e.key for e in enrollments(app)) == ["cart-a", "cart-c"]
    assert len(deliveries(app)) == 6


def test_batch_limits(make_app: AppFactory) -> None:
    client = TestClient(create_api(make_app()))
    for body in ({"events": []}, {"events": [{}] * 1001}, {"nope": 1}, [1, 2]):
        response = client.post("/v1/events/batch", json=body, headers=AUTH)
        assert response.status_code == 422, body
        assert response.json()["detail"][0]["field"] == "events"
    assert client.post("/v1/events/batch", json={"events": [{}]}).status_code == 401


def test_concurrent_duplicates_have_exactly_one_effect(make_app: AppFactory) -> None:
    app = make_app()
    raw = cart_event(T0, cart_id="cart-x")
    event = parse_event(raw)
    results: list[IngestResult | Exception] = []
    start = threading.Barrier(6)

    def post_once() -> None:
        start.wait()
        try:
            results.append(ingest_event(app.uow, app.workflows, app.clock, event, raw))
        except Exception as exc:  # collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=post_once) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(r, IngestResult) for r in results), results
    assert sum(1 for r in results if isinstance(r, IngestResult) and not r.duplicate) == 1
    assert len(enrollments(app)) == 1
    assert len(deliveries(app)) == 3


def test_conflicting_replay_changes_nothing(make_app: AppFactory, clock: VirtualClock) -> None:
    app: App = make_app()
    raw = cart_event(T0)
    ingest_event(app.uow, app.workflows, app.clock, parse_event(raw), raw)
    changed = dict(raw, total="20.00")
    try:
        ingest_event(app.uow, app.workflows, app.clock, parse_event(changed), changed)
    except ConflictError:
        pass
    else:
        raise AssertionError("a changed body under the same event_id was accepted")
    assert len(deliveries(app)) == 3


def test_one_batch_creates_and_changes_new_rows(make_app: AppFactory) -> None:
    """New contacts, carts and enrollments written as plain rows keep every change the batch
    made to them: a profile after the contact's first event, a second cart update, an exit."""
    app = make_app()
    client = TestClient(create_api(app))
    batch = [
        cart_event(T0, cart_id="cart-a", email="new@example.org"),
        profile_event(T0 + timedelta(minutes=1), email="new@example.org", first_name="Nia"),
        cart_event(
            T0 + timedelta(minutes=2), cart_id="cart-a", total="80.00", email="new@example.org"
        ),
        cart_event(T0 + timedelta(minutes=3), cart_id="cart-b", email="new@example.org"),
        order_event(T0 + timedelta(minutes=4), cart_id="cart-b", email="new@example.org"),
    ]
    response = client.post("/v1/events/batch", json={"events": batch}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 5
    with app.uow() as session:
        contact = session.scalars(select(Contact)).one()
        carts = {c.cart_id: c for c in session.scalars(select(Cart))}
    assert (contact.email, contact.first_name, contact.locale) == ("new@example.org", "Nia", "nl")
    assert carts["cart-a"].total == Decimal("80.00")
    assert carts["cart-a"].contact_id == carts["cart-b"].contact_id == contact.id
    assert carts["cart-b"].order_id is not None
    by_key = {e.key: e for e in enrollments(app) if e.workflow_id == "abandoned_cart"}
    assert {k: e.status for k, e in by_key.items()} == {"cart-a": "exited", "cart-b": "exited"}
    rows = [d for d in deliveries(app) if d.workflow_id == "abandoned_cart"]
    assert len(rows) == 6
    assert {d.enrollment_id for d in rows} == {e.id for e in by_key.values()}
    assert {d.status for d in rows} == {"skipped"}
    # cart-a's reminders count from its second update
    first_a = min(d.due_at for d in rows if d.enrollment_id == by_key["cart-a"].id)
    assert first_a > T0 + timedelta(minutes=2)


def test_many_new_enrollments_get_their_own_deliveries(make_app: AppFactory) -> None:
    """Enough new rows of each table that PostgreSQL takes the enrollments' ids from the
    sequence first and writes carts, events and deliveries through COPY."""
    app = make_app()
    client = TestClient(create_api(app))
    count = max(PREASSIGN_FROM, COPY_FROM) + 3
    batch = [
        cart_event(T0, cart_id=f"cart-{n}", email=f"shopper{n}@example.org") for n in range(count)
    ]
    response = client.post("/v1/events/batch", json={"events": batch}, headers=AUTH)
    assert response.json()["accepted"] == count
    with app.uow() as session:
        emails = {c.id: c.email for c in session.scalars(select(Contact))}
        carts = list(session.scalars(select(Cart)))
    assert len(carts) == count
    assert {(c.total, c.currency, c.items["items"][0]["name"]) for c in carts} == {
        (Decimal("74.50"), "EUR", "Stoneware mug")
    }
    by_id = {e.id: e for e in enrollments(app)}
    assert len(by_id) == count
    rows = deliveries(app)
    assert len(rows) == 3 * count
    for row in rows:
        enrollment = by_id[row.enrollment_id]
        assert row.contact_id == enrollment.contact_id
        assert (
            emails[row.contact_id] == f"shopper{enrollment.key.removeprefix('cart-')}@example.org"
        )


def test_concurrent_single_posts_each_get_their_own_answer(make_app: AppFactory) -> None:
    """Posts that arrive together may share a transaction; each still gets its own answer."""
    app = make_app()
    client = TestClient(create_api(app))
    posts = [cart_event(T0, cart_id=f"cart-{n}", email=f"s{n}@example.org") for n in range(24)]
    posts += [posts[0], dict(posts[1], total="99.00")]  # a replay and a conflict among them
    answers: dict[int, tuple[int, dict[str, object]]] = {}
    start = threading.Barrier(len(posts))

    def send(n: int) -> None:
        start.wait()
        response = client.post("/v1/events", json=posts[n], headers=AUTH)
        answers[n] = (response.status_code, response.json())

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(posts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n in range(2, 24):
        status, body = answers[n]
        assert status == 202, body
        assert body["event_id"] == posts[n]["event_id"]
        assert body["enrollments_started"] == ["abandoned_cart"]
    # Whichever of each pair came first was applied; the other is a replay or a conflict.
    assert sorted(answers[n][0] for n in (0, 24)) == [200, 202]
    assert sorted(answers[n][0] for n in (1, 25)) == [202, 409]
    assert len({e.key for e in enrollments(app) if e.workflow_id == "abandoned_cart"}) == 24
