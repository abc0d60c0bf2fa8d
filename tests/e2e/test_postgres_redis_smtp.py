"""The whole product over real services: API → PostgreSQL → sweeper → Redis → Dramatiq worker
→ SMTP server. The clock is virtual so a 24-hour sequence runs in seconds."""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from fastapi.testclient import TestClient

from remarket_mailer.bootstrap import SEND_QUEUE, App, build_app
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from remarket_mailer.entrypoints.scheduler import sweep
from remarket_mailer.entrypoints.worker import start_worker
from tests.conftest import T0, SmtpSink, make_settings, truncate_all
from tests.helpers import cart_event, consent_event, deliveries, order_event, post, profile_event

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(
    postgres_url: str,
    redis_url: str,
    redis_broker: RedisBroker,
    smtp_sink: SmtpSink,
    cart_only: Path,
) -> Iterator[tuple[App, TestClient, VirtualClock, RedisBroker, dramatiq.Worker]]:
    truncate_all(postgres_url)
    clock = VirtualClock(T0)
    broker = redis_broker
    settings = make_settings(
        database_url=postgres_url,
        broker_url=redis_url,
        provider_url=smtp_sink.url,
        workflows_dir=cart_only,
    )
    app = build_app(settings, clock=clock, broker=broker)
    worker = start_worker(app, threads=2)
    try:
        yield app, TestClient(create_api(app)), clock, broker, worker
    finally:
        worker.stop()  # the redis_broker fixture then removes the broker's keys
        app.close()


def settle(
    app: App, broker: RedisBroker, worker: dramatiq.Worker, sink: SmtpSink, expect: int
) -> None:
    """Run one scheduler sweep, then wait for the worker to drain Redis and the sink to fill."""
    sweep(app)
    broker.join(SEND_QUEUE, timeout=30_000)
    worker.join()
    deadline = time.monotonic() + 10
    while len(sink.messages) < expect and time.monotonic() < deadline:
        time.sleep(0.05)


def parse(raw: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_cart_reminders_arrive_by_smtp_and_stop_after_the_order(
    stack: tuple[App, TestClient, VirtualClock, RedisBroker, dramatiq.Worker], smtp_sink: SmtpSink
) -> None:
    app, client, clock, broker, worker = stack
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0 - timedelta(minutes=5)))
    assert post(client, cart_event(T0))["enrollments_started"] == ["abandoned_cart"]

    clock.set(T0 + timedelta(hours=1))
    settle(app, broker, worker, smtp_sink, expect=1)
    assert len(smtp_sink.messages) == 1
    first = smtp_sink.messages[0]
    assert first.rcpt_tos == ["ann@example.org"]
    assert first.mail_from == "news@shop.example"
    message = parse(first.data)
    # Ann is Dutch (locale nl): the email speaks her language.
    assert message["Subject"] == "Ann, je hebt iets in je winkelwagen laten liggen"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = str(message["List-Unsubscribe"])
    assert "<https://mail.shop.example/u/" in unsubscribe and "<mailto:" in unsubscribe
    assert message.get_content_type() == "multipart/alternative"

    clock.set(T0 + timedelta(hours=24))
    settle(app, broker, worker, smtp_sink, expect=2)
    assert len(smtp_sink.messages) == 2
    second = parse(smtp_sink.messages[1].data)
    code = deliveries(app)[1].discount_code
    assert code is not None and code.startswith("CART-")
    text_part = second.get_body(("plain",))
    html_part = second.get_body(("html",))
    assert text_part is not None and code in text_part.get_content()
    assert html_part is not None and code in html_part.get_content()

    clock.set(T0 + timedelta(hours=30))
    post(client, order_event(T0 + timedelta(hours=30)))
    clock.set(T0 + timedelta(days=4))
    settle(app, broker, worker, smtp_sink, expect=3)
    time.sleep(0.3)
    assert len(smtp_sink.messages) == 2, "no reminder after the order"
    assert [(d.status, d.reason) for d in deliveries(app)] == [
        ("sent", None),
        ("sent", None),
        ("skipped", "exited"),
    ]


def test_smtp_4xx_is_retried_then_sent_and_5xx_fails(
    stack: tuple[App, TestClient, VirtualClock, RedisBroker, dramatiq.Worker], smtp_sink: SmtpSink
) -> None:
    app, client, clock, broker, worker = stack
    for who in ("ann@example.org", "bob@example.org"):
        post(client, consent_event(T0 - timedelta(minutes=5), email=who))
    post(client, cart_event(T0, cart_id="cart-a"))
    post(client, cart_event(T0, cart_id="cart-b", contact={"email": "bob@example.org"}))

    smtp_sink.replies = ["451 4.3.0 try again later", "550 5.1.1 user unknown"]
    clock.set(T0 + timedelta(hours=1))
    settle(app, broker, worker, smtp_sink, expect=0)
    rows = {d.id: d for d in deliveries(app)}
    first_steps = [d for d in rows.values() if d.step_id == "reminder_1"]
    assert sorted(d.status for d in first_steps) == ["failed", "scheduled"]
    failed = next(d for d in first_steps if d.status == "failed")
    assert failed.detail is not None and "5.1.1" in failed.detail
    retried = next(d for d in first_steps if d.status == "scheduled")
    assert retried.reason == "retry" and retried.due_at > clock.now()

    clock.set(T0 + timedelta(hours=2))
    settle(app, broker, worker, smtp_sink, expect=1)
    assert len(smtp_sink.messages) == 1
    assert {d.id: d.status for d in deliveries(app)}[retried.id] == "sent"


def test_connection_closed_mid_batch_loses_nothing(
    stack: tuple[App, TestClient, VirtualClock, RedisBroker, dramatiq.Worker], smtp_sink: SmtpSink
) -> None:
    app, client, clock, broker, worker = stack
    people = [f"p{n}@example.org" for n in range(5)]
    for n, who in enumerate(people):
        post(client, consent_event(T0 - timedelta(minutes=5), email=who))
        post(client, cart_event(T0, cart_id=f"cart-{n}", contact={"email": who}))
    # The server accepts two messages, then says 421 and closes the connection.
    smtp_sink.replies = ["", "", "421 4.4.2 closing connection"]
    clock.set(T0 + timedelta(hours=1))
    settle(app, broker, worker, smtp_sink, expect=4)
    first = [d for d in deliveries(app) if d.step_id == "reminder_1"]
    assert sorted(d.status for d in first) == ["scheduled"] + ["sent"] * 4
    retried = next(d for d in first if d.status == "scheduled")
    assert retried.reason == "retry" and "421" in (retried.detail or "")
    clock.set(T0 + timedelta(hours=2))
    settle(app, broker, worker, smtp_sink, expect=5)
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.messages) == sorted(people)
    assert all(d.status == "sent" for d in deliveries(app) if d.step_id == "reminder_1")
