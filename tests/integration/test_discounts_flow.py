"""Pool codes in the send path, exhaustion rules, and redemption by order.placed."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from remarket_mailer.db.models import DiscountCode
from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from remarket_mailer.services.discounts import import_pool
from tests.conftest import ROOT, T0, AppFactory
from tests.helpers import (
    arrive,
    cart_event,
    consent_event,
    deliveries,
    order_event,
    post,
    profile_event,
    run_due,
)


def pool_workflow(tmp_path: Path, rule: str) -> Path:
    stock = (ROOT / "workflows" / "abandoned_cart.yaml").read_text()
    edited = stock.replace(
        "      percent: 10\n      expires_after: 7d\n      prefix: CART-",
        f"      pool: shopify-10\n      when_exhausted: {rule}",
    )
    assert edited != stock
    (tmp_path / "abandoned_cart.yaml").write_text(edited)
    return tmp_path


def test_pool_codes_are_handed_out_once_then_the_rule_applies(
    make_app: AppFactory, clock: VirtualClock, tmp_path: Path
) -> None:
    provider = MemoryProvider()
    app = make_app(provider=provider, workflows_dir=pool_workflow(tmp_path, "skip_step"))
    import_pool(
        app.uow,
        "shopify-10",
        ["SHOP10-AAA1"],
        kind="percent",
        value=Decimal(10),
        currency=None,
        minimum_order=None,
        expires_at=T0 + timedelta(days=30),
        now=T0,
    )
    client = TestClient(create_api(app))
    for who in ("ann@example.org", "bob@example.org"):
        post(client, profile_event(T0 - timedelta(minutes=5), email=who))
        post(client, consent_event(T0 - timedelta(minutes=5), email=who))
        post(client, cart_event(T0, cart_id=f"cart-{who[:3]}", contact={"email": who}))
    clock.set(T0 + timedelta(hours=1))
    run_due(app)
    clock.set(T0 + timedelta(hours=24))
    run_due(app)
    second = [d for d in deliveries(app) if d.step_id == "reminder_2"]
    outcomes = sorted((d.status, d.reason, d.discount_code) for d in second)
    assert outcomes == [
        ("sent", None, "SHOP10-AAA1"),
        ("skipped", "discount_unavailable", None),
    ]
    assert any("SHOP10-AAA1" in m.text for m in provider.outbox)


def test_send_without_code_when_the_pool_is_empty(
    make_app: AppFactory, clock: VirtualClock, tmp_path: Path
) -> None:
    provider = MemoryProvider()
    app = make_app(provider=provider, workflows_dir=pool_workflow(tmp_path, "send_without_code"))
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0 - timedelta(minutes=5)))
    post(client, cart_event(T0))
    clock.set(T0 + timedelta(hours=1))
    run_due(app)
    clock.set(T0 + timedelta(hours=24))
    run_due(app)
    second = next(d for d in deliveries(app) if d.step_id == "reminder_2")
    assert (second.status, second.discount_code) == ("sent", None)
    assert provider.outbox[-1].tags["step"] == "reminder_2"
    assert "%" not in provider.outbox[-1].subject  # no code promised in the subject


def test_order_with_the_code_redeems_it(make_app: AppFactory, clock: VirtualClock) -> None:
    app = make_app()
    client = TestClient(create_api(app))
    arrive(client, clock, profile_event(T0 - timedelta(minutes=5)))
    arrive(client, clock, consent_event(T0 - timedelta(minutes=5)))
    arrive(client, clock, cart_event(T0))
    clock.set(T0 + timedelta(hours=1))
    run_due(app)
    clock.set(T0 + timedelta(hours=24))
    run_due(app)
    code = next(d for d in deliveries(app) if d.step_id == "reminder_2").discount_code
    assert code
    arrive(client, clock, order_event(T0 + timedelta(hours=25), discount_codes=[code.lower()]))
    with app.uow() as session:
        row = session.scalar(select(DiscountCode).where(DiscountCode.code == code))
        assert row is not None and row.status == "redeemed"
    response = client.post(
        "/v1/discounts/validate",
        json={"code": code, "cart_total": "50.00", "currency": "EUR"},
        headers={"Authorization": "Bearer test-key"},
    )
    assert response.status_code == 200
    assert response.json()["valid"] is False and response.json()["reason"] == "redeemed"


def test_code_prefix_and_length_come_from_the_step(
    make_app: AppFactory, clock: VirtualClock, tmp_path: Path
) -> None:
    stock = (ROOT / "workflows" / "abandoned_cart.yaml").read_text()
    (tmp_path / "abandoned_cart.yaml").write_text(
        stock.replace("      percent: 10\n", "      percent: 10\n      length: 15\n", 1)
    )
    app = make_app(workflows_dir=tmp_path)
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0 - timedelta(minutes=5)))
    post(client, cart_event(T0))
    clock.set(T0 + timedelta(hours=1))
    run_due(app)
    clock.set(T0 + timedelta(hours=24))
    run_due(app)
    code = next(d for d in deliveries(app) if d.step_id == "reminder_2").discount_code
    assert code is not None and code.startswith("CART-")
    assert len(code.removeprefix("CART-").replace("-", "")) == 15
