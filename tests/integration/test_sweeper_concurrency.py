"""Two sweepers at once on PostgreSQL never claim one delivery twice (FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import timedelta

import pytest
from dramatiq.brokers.stub import StubBroker
from fastapi.testclient import TestClient

from remarket_mailer.bootstrap import build_app
from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from remarket_mailer.services.dispatch import dispatch_due
from tests.conftest import T0, make_settings, truncate_all
from tests.helpers import cart_event, consent_event, post

pytestmark = pytest.mark.integration


def test_two_sweepers_claim_disjoint_rows(postgres_url: str, clock: VirtualClock) -> None:
    truncate_all(postgres_url)
    app = build_app(
        make_settings(database_url=postgres_url),
        clock=clock,
        provider=MemoryProvider(),
        broker=StubBroker(),
    )
    client = TestClient(create_api(app))
    for n in range(60):
        who = f"shopper{n}@example.org"
        post(client, consent_event(T0 - timedelta(minutes=1), email=who))
        post(client, cart_event(T0, cart_id=f"cart-{n}", contact={"email": who}))
    clock.set(T0 + timedelta(days=4))

    claimed: list[list[int]] = [[], []]
    start = threading.Barrier(2)

    def sweeper(slot: int) -> None:
        def enqueue(ids: Sequence[int]) -> None:
            claimed[slot].extend(ids)

        start.wait()
        for _ in range(20):
            dispatch_due(app.uow, app.clock, enqueue, batch_size=3)

    threads = [threading.Thread(target=sweeper, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = claimed[0] + claimed[1]
    assert len(everything) == 180
    assert len(set(everything)) == 180, "a delivery was claimed twice"
    assert claimed[0] and claimed[1], "both sweepers took part"
    app.close()
