"""What the worker counts for Prometheus, through the actor that receives every batch's
outcome: sent with its due-to-sent lag, skipped and deferred by reason, failed, the provider's
request latency; and the scheduler's backlog of due rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import update

from remarket_mailer import metrics
from remarket_mailer.bootstrap import App
from remarket_mailer.db.models import Delivery
from remarket_mailer.delivery.base import OutboundMessage, Permanent, SendResult
from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints import actors
from remarket_mailer.entrypoints.api import create_api
from remarket_mailer.entrypoints.scheduler import sweep_and_count
from remarket_mailer.services.backlog import count_backlog
from remarket_mailer.services.dispatch import dispatch_due
from tests.conftest import T0, AppFactory
from tests.helpers import arrive, cart_event, consent_event, deliveries, post, profile_event


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def through_the_actor(app: App) -> None:
    """The sweeper, handing each batch to the real actor function (as a worker would)."""
    dispatch_due(
        app.uow,
        app.clock,
        lambda ids: actors.send_batch(list(ids)),
        batch_size=app.settings.batch_size,
        lease=timedelta(seconds=app.settings.lease_seconds),
        pause_keys=app.delivery.pause_keys_by_workflow(),
    )


def test_sent_lag_skips_and_provider_latency_are_counted(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    app = make_app()
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0 - timedelta(minutes=2)))
    post(client, cart_event(T0))
    post(client, cart_event(T0, cart_id="cart-2", email="bob@example.org"))  # no consent
    before = {
        "sent": sample("remarket_sent_total"),
        "lag": sample("remarket_due_to_sent_seconds_sum"),
        "lag_count": sample("remarket_due_to_sent_seconds_count"),
        "skipped": sample("remarket_skipped_total", reason="no_consent"),
        "calls": sample("remarket_provider_request_seconds_count", provider="memory"),
    }
    due = min(d.due_at for d in deliveries(app))
    clock.set(due + timedelta(minutes=3))  # three minutes late, 10:xx in Amsterdam
    through_the_actor(app)
    assert sample("remarket_sent_total") == before["sent"] + 1
    assert sample("remarket_due_to_sent_seconds_count") == before["lag_count"] + 1
    lag = sample("remarket_due_to_sent_seconds_sum") - before["lag"]
    assert abs(lag - 180) < 1, lag  # the virtual clock: exactly the three minutes
    assert sample("remarket_skipped_total", reason="no_consent") == before["skipped"] + 1
    assert sample("remarket_provider_request_seconds_count", provider="memory") == (
        before["calls"] + 1
    )


def test_quiet_hours_are_counted_as_deferred_by_reason(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    app = make_app()
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0 - timedelta(minutes=2)))
    evening = T0.replace(hour=19)  # 20:00 in Amsterdam: the first reminder is due at 21:00
    arrive(client, clock, cart_event(evening))
    before = sample("remarket_deferred_total", reason="quiet_hours")
    sent = sample("remarket_sent_total")
    clock.set(evening + timedelta(hours=1, minutes=1))  # the window closed at 21:00
    through_the_actor(app)
    assert sample("remarket_deferred_total", reason="quiet_hours") == before + 1
    assert sample("remarket_sent_total") == sent


def test_a_deferral_counts_in_the_planned_lag_not_in_the_queue_lag(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    app = make_app()
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0 - timedelta(minutes=2)))
    evening = T0.replace(hour=19)  # the first reminder falls in quiet hours (21:00 Amsterdam)
    arrive(client, clock, cart_event(evening))
    first = min(deliveries(app), key=lambda d: d.planned_at)
    clock.set(first.planned_at + timedelta(minutes=1))
    through_the_actor(app)  # deferred to the morning
    deferred = next(d for d in deliveries(app) if d.id == first.id)
    assert deferred.status == "scheduled"
    assert deferred.due_at - first.planned_at > timedelta(hours=6)
    before = {
        name: sample(name)
        for name in (
            "remarket_due_to_sent_seconds_sum",
            "remarket_due_to_sent_seconds_count",
            "remarket_planned_to_sent_seconds_sum",
            "remarket_planned_to_sent_seconds_count",
        )
    }
    clock.set(deferred.due_at + timedelta(minutes=2))
    through_the_actor(app)
    assert next(d for d in deliveries(app) if d.id == first.id).status == "sent"
    after = {name: sample(name) - value for name, value in before.items()}
    assert after["remarket_due_to_sent_seconds_count"] == 1
    assert abs(after["remarket_due_to_sent_seconds_sum"] - 120) < 1  # only the queue's 2 min
    assert after["remarket_planned_to_sent_seconds_count"] == 1
    overnight = (deferred.due_at + timedelta(minutes=2) - first.planned_at).total_seconds()
    assert abs(after["remarket_planned_to_sent_seconds_sum"] - overnight) < 1


class Refusing(MemoryProvider):
    """Refuses every message for good (a 5xx from the server)."""

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        return [Permanent("550 mailbox unavailable") for _ in messages]


def test_a_permanent_refusal_is_counted_as_failed(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    app = make_app(provider=Refusing())
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0 - timedelta(minutes=2)))
    post(client, cart_event(T0))
    before = sample("remarket_failed_total", reason="permanent")
    clock.set(min(d.due_at for d in deliveries(app)) + timedelta(seconds=1))
    through_the_actor(app)
    assert sample("remarket_failed_total", reason="permanent") == before + 1


def test_the_backlog_counts_due_rows_by_status(make_app: AppFactory, clock: VirtualClock) -> None:
    app = make_app()
    client = TestClient(create_api(app))
    post(client, consent_event(T0 - timedelta(minutes=2)))
    for n in range(3):
        post(client, cart_event(T0, cart_id=f"cart-{n}"))
    rows = deliveries(app)
    first = min(d.due_at for d in rows)
    assert count_backlog(app.uow, clock) == {"scheduled": 0, "queued": 0, "sending": 0}
    clock.set(first + timedelta(seconds=1))
    due_now = sum(1 for d in rows if d.due_at <= clock.now())
    assert count_backlog(app.uow, clock) == {"scheduled": due_now, "queued": 0, "sending": 0}
    with app.uow() as session:  # one of them claimed, another being sent
        session.execute(update(Delivery).where(Delivery.id == rows[0].id).values(status="queued"))
        session.execute(update(Delivery).where(Delivery.id == rows[1].id).values(status="sending"))
    counted = count_backlog(app.uow, clock)
    assert counted["queued"] == 1 and counted["sending"] == 1
    assert counted["scheduled"] == sum(1 for d in rows[2:] if d.due_at <= clock.now())


def test_the_scheduler_sweep_sets_the_backlog_gauge(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    app = make_app(batch_size=1)
    client = TestClient(create_api(app))
    post(client, consent_event(T0 - timedelta(minutes=2)))
    for n in range(3):
        post(client, cart_event(T0, cart_id=f"cart-{n}"))
    clock.set(max(d.due_at for d in deliveries(app)) + timedelta(hours=100))
    actors.declare(app.broker)  # the stub broker keeps what the sweep enqueues
    metrics.set_backlog({"scheduled": 99})
    sweep_and_count(app)  # claims what it may and enqueues it
    rows = deliveries(app)
    queued = sum(1 for d in rows if d.status == "queued")
    scheduled = sum(1 for d in rows if d.status == "scheduled")
    assert queued >= 1
    assert sample("remarket_backlog_deliveries", status="queued") == queued
    assert sample("remarket_backlog_deliveries", status="scheduled") == scheduled
    assert sample("remarket_backlog_deliveries", status="sending") == 0
