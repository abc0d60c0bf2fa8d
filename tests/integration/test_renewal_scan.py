"""The renewal scan enrolls subscriptions that no event enrolled, once per renewal date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from remarket_mailer.db.models import Contact, Subscription
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.services.renewal_scan import scan_renewals
from tests.conftest import T0, AppFactory
from tests.helpers import deliveries, enrollments


def test_scan_enrolls_each_renewal_once(make_app: AppFactory, clock: VirtualClock) -> None:
    app = make_app()
    with app.uow() as session:
        for n in range(7):
            contact = Contact(
                email=f"s{n}@example.org",
                timezone="Europe/Amsterdam",
                attributes={},
                created_at=T0,
                updated_at=T0,
            )
            session.add(contact)
            session.flush()
            session.add(
                Subscription(
                    subscription_id=f"sub-{n}",
                    contact_id=contact.id,
                    plan="Tea club",
                    status="cancelled" if n == 6 else "active",
                    # sub-5 renews in 60 days: outside the 31-day horizon.
                    renews_at=T0 + timedelta(days=60 if n == 5 else 20 + n),
                    price=Decimal("9.00"),
                    currency="EUR",
                    updated_at=T0,
                )
            )
    seen: list[tuple[int, int]] = []
    report = scan_renewals(
        app.uow,
        app.workflows,
        app.clock,
        page=2,
        progress=lambda so_far: seen.append((so_far.pages, so_far.enrolled)),
    )
    assert (report.candidates, report.enrolled) == (5, 5)
    assert report.pages == 4  # 7 subscriptions, 2 per page
    # `remarket renewals scan` shows this as it goes: once per page.
    assert [pages for pages, _ in seen] == [1, 2, 3, 4] and seen[-1] == (4, 5)
    keys = sorted(e.key for e in enrollments(app))
    assert keys[0] == f"sub-0@{(T0 + timedelta(days=20)).date().isoformat()}"
    rows = deliveries(app)
    # 30 days before is already past for renewals 20-24 days out: only the 7- and 1-day
    # reminders are created, at 10:00 Amsterdam time.
    assert {d.step_id for d in rows} == {"days_7", "days_1"}
    amsterdam = ZoneInfo("Europe/Amsterdam")
    assert {d.due_at.astimezone(amsterdam).hour for d in rows} == {10}
    again = scan_renewals(app.uow, app.workflows, app.clock)
    assert again.enrolled == 0
    assert len(enrollments(app)) == 5


def test_scan_skips_what_events_already_enrolled(make_app: AppFactory, clock: VirtualClock) -> None:
    from fastapi.testclient import TestClient

    from remarket_mailer.entrypoints.api import create_api
    from tests.helpers import event, post

    app = make_app()
    client = TestClient(create_api(app))
    renews = datetime(2026, 11, 25, 8, tzinfo=UTC)
    post(
        client,
        event(
            "subscription.upserted",
            T0,
            subscription_id="sub-x",
            plan="Tea",
            status="active",
            renews_at=renews.isoformat(),
        ),
    )
    assert len(enrollments(app)) == 1
    report = scan_renewals(app.uow, app.workflows, app.clock)
    assert (report.candidates, report.enrolled) == (0, 0)


def test_scan_writes_awkward_text_exactly(make_app: AppFactory, clock: VirtualClock) -> None:
    """On PostgreSQL the rows go through COPY's text format, formatted by hand: backslashes,
    tabs, newlines and non-ASCII in shop data must arrive unchanged."""
    app = make_app()
    plan = 'Tea\tclub\\n "deluxe"\nbrew \\ café ☕'
    subscription_id = "sub\\x\ty"
    with app.uow() as session:
        contact = Contact(email="awkward@example.org", attributes={}, created_at=T0, updated_at=T0)
        session.add(contact)
        session.flush()
        session.add(
            Subscription(
                subscription_id=subscription_id,
                contact_id=contact.id,
                plan=plan,
                status="active",
                renews_at=T0 + timedelta(days=10),
                price=Decimal("9.00"),
                currency="EUR",
                updated_at=T0,
            )
        )
    report = scan_renewals(app.uow, app.workflows, app.clock, workers=1)
    assert report.enrolled == 1
    (enrollment,) = enrollments(app)
    assert enrollment.key == f"{subscription_id}@{(T0 + timedelta(days=10)).date().isoformat()}"
    assert enrollment.context["event"]["subscription_id"] == subscription_id
    assert {d.step_id for d in deliveries(app)} == {"days_7", "days_1"}


def test_a_reminder_quotes_the_subscription_as_it_is_when_sent(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    """The scan stores only the subscription id and renewal date; the email reads plan and
    price at send time, so a price change after the scan is what the customer is told."""
    from sqlalchemy import update

    from remarket_mailer.delivery.providers.memory import MemoryProvider
    from tests.helpers import run_due

    provider = MemoryProvider()
    app = make_app(provider=provider, consent_rule="opt_out")
    renews = T0 + timedelta(days=10)
    with app.uow() as session:
        contact = Contact(email="tea@example.org", attributes={}, created_at=T0, updated_at=T0)
        session.add(contact)
        session.flush()
        session.add(
            Subscription(
                subscription_id="sub-price",
                contact_id=contact.id,
                plan="Tea club",
                status="active",
                renews_at=renews,
                price=Decimal("9.00"),
                currency="EUR",
                updated_at=T0,
            )
        )
    assert scan_renewals(app.uow, app.workflows, app.clock).enrolled == 1
    with app.uow() as session:
        session.execute(update(Subscription).values(plan="Tea club deluxe", price=Decimal("11.50")))
    clock.set(renews - timedelta(days=7) + timedelta(hours=12))
    run_due(app)
    (message,) = provider.outbox
    assert "Tea club deluxe" in message.text
    assert "11.50" in message.text and "9.00" not in message.text
