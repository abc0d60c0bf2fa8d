"""How many deliveries one ``send_batch`` message carries: with a batch ESP and no
REMARKET_BATCH_SIZE, as many as one request of the ESP takes (each batch pays its queries and
transactions once, however many emails it carries); otherwise the setting."""

from __future__ import annotations

from datetime import timedelta

import dramatiq
import pytest

from remarket_mailer.bootstrap import MAX_ESP_BATCH, SEND_QUEUE, App
from remarket_mailer.delivery.providers.postmark import PostmarkProvider
from remarket_mailer.delivery.providers.smtp import SmtpProvider, SmtpSettings
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.actors import declare
from remarket_mailer.entrypoints.scheduler import sweep
from remarket_mailer.entrypoints.worker import start_worker
from remarket_mailer.schemas import parse_event
from remarket_mailer.services.ingest import ingest_batch
from tests.conftest import T0, AppFactory
from tests.helpers import cart_event

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def postmark() -> PostmarkProvider:
    return PostmarkProvider("token", base_url="http://127.0.0.1:9")


def due_carts(app: App, clock: VirtualClock, count: int) -> None:
    events = [
        cart_event(T0, cart_id=f"cart-{n}", contact={"email": f"shopper{n}@example.org"})
        for n in range(count)
    ]
    ingest_batch(app.uow, app.workflows, app.clock, [(parse_event(e), e) for e in events])
    clock.set(T0 + timedelta(hours=1, minutes=1))


def enqueued_batches(app: App) -> list[int]:
    """The sizes of the ``send_batch`` messages the sweep put on the (stub) broker."""
    queue = app.broker.queues[SEND_QUEUE]  # type: ignore[attr-defined]
    sizes = []
    while not queue.empty():
        message = dramatiq.Message.decode(queue.get_nowait())
        sizes.append(len(message.args[0]))
    return sizes


def test_a_batch_esp_without_the_setting_gets_batches_of_one_request(
    make_app: AppFactory, clock: VirtualClock, cart_only: object
) -> None:
    app = make_app(provider=postmark(), workflows_dir=cart_only)
    assert app.send_batch_size() == min(PostmarkProvider.max_batch, MAX_ESP_BATCH) == 500
    declare(app.broker)
    due_carts(app, clock, 150)
    sweep(app)
    assert enqueued_batches(app) == [150]  # at the default 100 it would be two messages


def test_the_setting_wins_over_the_esp(
    make_app: AppFactory, clock: VirtualClock, cart_only: object
) -> None:
    app = make_app(provider=postmark(), workflows_dir=cart_only, batch_size=100)
    assert app.send_batch_size() == 100
    declare(app.broker)
    due_carts(app, clock, 150)
    sweep(app)
    assert sorted(enqueued_batches(app)) == [50, 100]


def test_smtp_and_a_mix_of_providers_keep_the_default(make_app: AppFactory) -> None:
    smtp = SmtpProvider(SmtpSettings("127.0.0.1", 2525))
    assert make_app(provider=smtp).send_batch_size() == 100
    mixed = make_app(provider=postmark(), providers={"bulk": "smtp://127.0.0.1:2525"})
    assert mixed.send_batch_size() == 100


def test_the_worker_time_limit_allows_for_the_batch_it_gets(make_app: AppFactory) -> None:
    app = make_app(provider=postmark())
    worker = start_worker(app, threads=1)
    try:
        limit = app.broker.get_actor("send_batch").options["time_limit"]
    finally:
        worker.stop()
    assert limit == int(app.delivery.time_limit_seconds(app.send_batch_size()) * 1000)
