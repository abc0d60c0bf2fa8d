"""The operator report counts what happened, and flags low pools."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from fastapi.testclient import TestClient

from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from remarket_mailer.services.discounts import import_pool
from remarket_mailer.services.report import build_report
from tests.conftest import T0, AppFactory
from tests.helpers import cart_event, consent_event, event, post, profile_event, run_due


def test_report_counts_sends_skips_pools_and_suppressions(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    app = make_app()
    import_pool(
        app.uow,
        "spring",
        ["SPRING-0001", "SPRING-0002"],
        kind="percent",
        value=Decimal(5),
        currency=None,
        minimum_order=None,
        expires_at=None,
        now=T0,
    )
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0 - timedelta(minutes=5)))
    post(client, cart_event(T0))
    post(client, cart_event(T0, cart_id="no-consent", contact={"email": "x@example.org"}))
    post(client, event("contact.unsubscribed", T0, email="gone@example.org"))
    clock.set(T0 + timedelta(hours=1))
    run_due(app)
    data = build_report(app.uow, app.clock, timedelta(days=7))
    cart = data["deliveries_by_workflow"]["abandoned_cart"]
    assert cart["sent"] == 1 and cart["skipped"] == 1 and cart["scheduled"] == 4
    assert data["skip_and_failure_reasons"]["skipped:no_consent"] == 1
    assert data["discount_pools"]["spring"] == {"available": 2, "low": True}
    assert data["suppressions"] == {"unsubscribed": 1}
    assert data["enrollments"]["abandoned_cart"] == {"treated:active": 2}
