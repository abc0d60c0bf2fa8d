"""Results are recorded after each provider request, not once per batch: a worker that dies
mid-batch re-sends only the request that was in flight, and a recording that loses its
database connection is retried instead of leaving the rows to their lease."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from remarket_mailer.db import consent as consent_db
from remarket_mailer.db import deliveries as deliveries_db
from remarket_mailer.delivery.base import OutboundMessage, Provider, SendResult, Sent
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.domain.states import DeliveryStatus
from remarket_mailer.services import sending
from tests.conftest import AppFactory
from tests.helpers import deliveries, run_due
from tests.integration.test_send_results import start_carts

CARTS = 30


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing after it runs, no ``except Exception`` catches it."""


class Wire(Provider):
    """Accepts every message (it is on the wire: the recipient gets it) in requests of 5, and
    can kill the worker right after the provider accepted request number ``die_after``."""

    name = "wire"
    max_batch = 5

    def __init__(self) -> None:
        self.delivered: list[int] = []
        self.requests = 0
        self.die_after: int | None = None

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        self.requests += 1
        self.delivered.extend(m.delivery_id for m in messages)
        if self.requests == self.die_after:
            raise WorkerKilled
        return [Sent(f"wire-{m.delivery_id}") for m in messages]


def first_reminders(app: Any) -> list[Any]:
    return [d for d in deliveries(app) if d.step_id == "reminder_1"]


def test_a_crash_mid_batch_resends_only_the_request_in_flight(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    wire = Wire()
    app = make_app(provider=wire, lease_seconds=60)
    start_carts(app, clock, [f"p{n}@shop.example" for n in range(CARTS)])
    wire.die_after = 4
    with pytest.raises(WorkerKilled):
        run_due(app)
    statuses = Counter(d.status for d in first_reminders(app))
    assert statuses == {DeliveryStatus.SENT: 15, DeliveryStatus.SENDING: 15}

    wire.die_after = None
    clock.advance(timedelta(seconds=61))  # the dead worker's lease runs out
    run_due(app)
    assert Counter(d.status for d in first_reminders(app)) == {DeliveryStatus.SENT: CARTS}
    twice = [i for i, n in Counter(wire.delivered).items() if n > 1]
    assert len(twice) == wire.max_batch  # the request that was on the wire, and no more


@pytest.fixture
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sending.limits, "RECORD_RETRY_PAUSES", (0.0, 0.0, 0.0))


def drop_connection(times: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The next ``times`` recordings lose their database connection mid-transaction."""
    calls = [0]
    finish = deliveries_db.finish_deliveries

    def failing(session: Any, status: Any, changes: list[Any], *args: Any) -> Any:
        if status != DeliveryStatus.SENDING or not changes:
            return finish(session, status, changes, *args)  # taking rows, not recording them
        calls[0] += 1
        if calls[0] <= times:
            raise OperationalError(
                "UPDATE deliveries ...",
                {},
                Exception("terminating connection due to administrator command"),
            )
        return finish(session, status, changes, *args)

    monkeypatch.setattr(deliveries_db, "finish_deliveries", failing)
    return calls


def test_results_are_recorded_after_the_connection_drops(
    make_app: AppFactory, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch, no_pauses: None
) -> None:
    wire = Wire()
    app = make_app(provider=wire)
    start_carts(app, clock, [f"p{n}@shop.example" for n in range(10)])
    drop_connection(2, monkeypatch)
    run_due(app)
    assert Counter(d.status for d in first_reminders(app)) == {DeliveryStatus.SENT: 10}
    assert len(wire.delivered) == 10


def test_results_left_to_the_lease_when_the_database_stays_away(
    make_app: AppFactory, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch, no_pauses: None
) -> None:
    wire = Wire()
    app = make_app(provider=wire)
    start_carts(app, clock, [f"p{n}@shop.example" for n in range(5)])
    calls = drop_connection(100, monkeypatch)
    run_due(app)  # does not raise: the worker goes on with its next batch
    assert calls[0] == len(sending.RECORD_RETRY_PAUSES) + 1
    assert Counter(d.status for d in first_reminders(app)) == {DeliveryStatus.SENDING: 5}


def test_attempts_count_requests_made_not_rows_taken(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    """A row skipped before any provider call made no attempt; a sent row made one."""
    wire = Wire()
    app = make_app(provider=wire)
    start_carts(app, clock, ["kept@shop.example", "gone@shop.example"])
    with app.uow() as session:
        consent_db.suppress(session, "gone@shop.example", "complaint", "test", clock.now())
    run_due(app)
    rows = {d.status: d.attempts for d in first_reminders(app)}
    assert rows == {DeliveryStatus.SENT: 1, DeliveryStatus.SKIPPED: 0}
