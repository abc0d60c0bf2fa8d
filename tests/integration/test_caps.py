"""Frequency caps in the send path: deferred, never dropped, priority first, race-free."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from dramatiq.brokers.stub import StubBroker
from fastapi.testclient import TestClient

from remarket_mailer.bootstrap import build_app
from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from remarket_mailer.services.dispatch import dispatch_due
from tests.conftest import ROOT, T0, AppFactory, make_settings, truncate_all
from tests.helpers import (
    arrive,
    cart_event,
    consent_event,
    deliveries,
    post,
    profile_event,
    run_due,
)


def test_second_cart_reminder_waits_for_the_cap(make_app: AppFactory, clock: VirtualClock) -> None:
    provider = MemoryProvider()
    app = make_app(provider=provider)
    client = TestClient(create_api(app))
    arrive(client, clock, profile_event(T0 - timedelta(minutes=5)))
    arrive(client, clock, consent_event(T0 - timedelta(minutes=5)))
    arrive(client, clock, cart_event(T0, cart_id="cart-a"))
    arrive(client, clock, cart_event(T0 + timedelta(minutes=30), cart_id="cart-b"))
    clock.set(T0 + timedelta(hours=1, minutes=30))
    run_due(app)
    # cart-a's first reminder went out; cart-b's would have to wait 16 h, past its 12 h
    # expiry: skipped as capped, never sent late.
    assert len(provider.outbox) == 1
    by_step = {(d.enrollment_id, d.step_id): d for d in deliveries(app)}
    first_b = [d for (e, step), d in by_step.items() if step == "reminder_1" and d.status != "sent"]
    assert [(d.status, d.reason) for d in first_b] == [("skipped", "capped")]

    clock.set(T0 + timedelta(hours=24, minutes=30))
    run_due(app)
    assert len(provider.outbox) == 2  # cart-a's second reminder at 24 h
    second_b = [
        d
        for (e, step), d in by_step.items()
        if step == "reminder_2" and e == first_b[0].enrollment_id
    ][0]
    second_b = {d.id: d for d in deliveries(app)}[second_b.id]
    # Its 24 h expiry leaves room: deferred to when the cap and the send window allow.
    assert (second_b.status, second_b.reason) == ("scheduled", "deferred")
    assert second_b.due_at == T0 + timedelta(hours=46)  # 16 h later is 02:00 local: 08:00
    clock.set(T0 + timedelta(hours=46))
    run_due(app)
    assert len(provider.outbox) == 3
    assert {d.id: d for d in deliveries(app)}[second_b.id].status == "sent"


def test_two_workers_ten_due_one_contact_exactly_one_sent(
    postgres_url: str, clock: VirtualClock, tmp_path: Path
) -> None:
    truncate_all(postgres_url)
    # The stock first reminder expires after 12 h; give it a week so the nine capped
    # deliveries are deferred (not skipped as expired).
    stock = (ROOT / "workflows" / "abandoned_cart.yaml").read_text()
    (tmp_path / "abandoned_cart.yaml").write_text(
        stock.replace("expires_after: 12h", "expires_after: 7d")
    )
    provider = MemoryProvider()
    settings = make_settings(
        database_url=postgres_url, frequency_caps="1/16h", workflows_dir=tmp_path
    )
    app = build_app(settings, clock=clock, provider=provider, broker=StubBroker())
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0 - timedelta(minutes=5)))
    for n in range(10):
        post(client, cart_event(T0, cart_id=f"cart-{n}"))
    clock.set(T0 + timedelta(hours=1))
    batches: list[list[int]] = []
    dispatch_due(app.uow, app.clock, lambda ids: batches.append(list(ids)), batch_size=1)
    assert len(batches) == 10
    start = threading.Barrier(2)

    def worker(mine: list[list[int]]) -> None:
        start.wait()
        for batch in mine:
            app.delivery.send(batch)

    threads = [threading.Thread(target=worker, args=(batches[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first_steps = [d for d in deliveries(app) if d.step_id == "reminder_1"]
    assert len(provider.outbox) == 1
    assert sorted(d.status for d in first_steps) == ["scheduled"] * 9 + ["sent"]
    assert all(
        d.detail and "frequency_cap" in d.detail for d in first_steps if d.status == "scheduled"
    )
    app.close()


def test_caps_in_three_scopes(make_app: AppFactory, clock: VirtualClock) -> None:
    """Global 10/1h lets both go; the marketing category's 1/16h holds the second back."""
    provider = MemoryProvider()
    app = make_app(provider=provider, frequency_caps="10/1h", category_caps={"marketing": "1/16h"})
    client = TestClient(create_api(app))
    arrive(client, clock, profile_event(T0 - timedelta(minutes=5)))
    arrive(client, clock, consent_event(T0 - timedelta(minutes=5)))
    arrive(client, clock, cart_event(T0, cart_id="cart-a"))
    arrive(client, clock, cart_event(T0 + timedelta(minutes=10), cart_id="cart-b"))
    clock.set(T0 + timedelta(hours=1, minutes=10))
    run_due(app)
    first = [d for d in deliveries(app) if d.step_id == "reminder_1"]
    assert sorted((d.status, d.reason) for d in first) == [
        ("sent", None),
        ("skipped", "capped"),
    ]
