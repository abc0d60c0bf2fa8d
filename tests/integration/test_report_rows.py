"""The report's read side on SQLite and PostgreSQL: the rows its figures are computed from."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from fastapi.testclient import TestClient

from remarket_mailer.db import report_rows as reports
from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from remarket_mailer.services.webhooks import record_engagement
from tests.conftest import T0, AppFactory
from tests.helpers import cart_event, consent_event, order_event, post, profile_event, run_due


def test_rows_of_a_window_sends_engagement_orders(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    provider = MemoryProvider()
    app = make_app(provider=provider)
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0 - timedelta(minutes=5)))
    post(client, cart_event(T0))
    post(client, cart_event(T0, cart_id="no-consent", contact={"email": "x@example.org"}))
    clock.set(T0 + timedelta(hours=1))
    run_due(app)
    with app.uow() as session:
        rows = reports.deliveries(session, T0, T0 + timedelta(days=1))
    sent = [r for r in rows if r.status == "sent"]
    skipped = [r for r in rows if r.status == "skipped"]
    assert [(r.workflow_id, r.step_id) for r in sent] == [("abandoned_cart", "reminder_1")]
    assert [r.reason for r in skipped] == ["no_consent"]
    assert sent[0].sent_at is not None and not sent[0].holdout
    # Pending rows (the later reminders) have no outcome yet: not report rows.
    assert all(r.status in ("sent", "skipped", "failed") for r in rows)

    clock.set(T0 + timedelta(hours=2))
    assert record_engagement(app.uow, app.clock, sent[0].id, "clicked", "https://shop/x")
    clock.set(T0 + timedelta(hours=3))
    post(client, order_event(T0 + timedelta(hours=3), total="42.10", discount_codes=["WB-1"]))
    with app.uow() as session:
        events = reports.engagement(session, T0, T0 + timedelta(days=1))
        bought = reports.orders(session, [sent[0].contact_id], T0, T0 + timedelta(days=6))
        before = reports.orders(session, [sent[0].contact_id], T0, T0 + timedelta(hours=3))
        other = reports.engagement(session, T0, T0 + timedelta(days=1), "win_back")
        span = reports.data_span(session)
    assert [(e.delivery_id, e.kind) for e in events] == [(sent[0].id, "clicked")]
    assert events[0].occurred_at == T0 + timedelta(hours=2) and events[0].provider == "remarket"
    assert other == []
    assert [(o.total, o.codes) for o in bought] == [(Decimal("42.10"), ("WB-1",))]
    assert before == []  # until is exclusive
    # From the first reminder (sent, or skipped for consent, at its hour) to the order that
    # ended the later two: their moment is when they were skipped, not when they were due.
    assert span == (T0 + timedelta(hours=1), T0 + timedelta(hours=3))
    with app.uow() as session:
        exited = reports.deliveries(session, T0, T0 + timedelta(days=9))
    assert sorted((r.step_id, r.reason) for r in exited if r.reason == "exited") == [
        ("last_chance", "exited"),
        ("reminder_2", "exited"),
    ]


def test_codes_given_out_by_steps(make_app: AppFactory, clock: VirtualClock) -> None:
    app = make_app(provider=MemoryProvider())
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0 - timedelta(minutes=5)))
    post(client, cart_event(T0))
    for hours in (1, 25):
        clock.set(T0 + timedelta(hours=hours))
        run_due(app)
    with app.uow() as session:
        given = reports.codes(session, T0, T0 + timedelta(days=2))
        none_yet = reports.codes(session, T0, T0 + timedelta(hours=2))
        elsewhere = reports.codes(session, T0, T0 + timedelta(days=2), "win_back")
        sent = [r for r in reports.deliveries(session, T0, T0 + timedelta(days=2)) if r.sent_at]
    assert [(c.workflow_id, c.step_id, c.status) for c in given] == [
        ("abandoned_cart", "reminder_2", "assigned")
    ]
    assert given[0].code == next(r.discount_code for r in sent if r.step_id == "reminder_2")
    assert none_yet == [] and elsewhere == []
