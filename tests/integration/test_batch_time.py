"""A batch's time limit and lease fit its providers: the time limit lets every request use its
whole timeout, the lease covers the slowest single request (the batch renews it between
requests), and a lease too short for that refuses to start with one line."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from remarket_mailer.delivery.base import OutboundMessage, SendResult
from remarket_mailer.delivery.providers.postmark import PostmarkProvider
from remarket_mailer.delivery.providers.sendgrid import SendGridProvider
from remarket_mailer.delivery.providers.smtp import SmtpProvider, SmtpSettings
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.actors import declare
from remarket_mailer.errors import ConfigError
from remarket_mailer.services import sending
from tests.conftest import AppFactory
from tests.helpers import deliveries, run_due
from tests.integration.test_record_as_you_go import Wire, first_reminders
from tests.integration.test_send_results import start_carts

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def smtp(timeout: float) -> SmtpProvider:
    return SmtpProvider(SmtpSettings("127.0.0.1", 2525, timeout=timeout))


def test_the_time_limit_lets_every_request_use_its_timeouts(make_app: AppFactory) -> None:
    app = make_app(provider=smtp(30), batch_size=100)
    limit = app.delivery.time_limit_seconds(100)
    requests = 100 // SmtpProvider.max_batch
    assert limit >= requests * 3 * 30  # each request: connect, reconnect, one stalled reply
    from dramatiq.brokers.stub import StubBroker

    broker = StubBroker()
    declare(broker, limit)
    assert broker.get_actor("send_batch").options["time_limit"] == int(limit * 1000)


@pytest.mark.parametrize(
    ("provider", "longest"),
    [
        (lambda: smtp(30), 3 * 30),
        (lambda: PostmarkProvider("token", base_url="http://127.0.0.1:9"), 30 + 10),
        (lambda: SendGridProvider("key", base_url="http://127.0.0.1:9"), 4 * (30 + 10)),
    ],
)
def test_the_default_lease_fits_one_request_of_every_provider(
    make_app: AppFactory, provider: object, longest: float
) -> None:
    app = make_app(provider=provider())  # type: ignore[operator]
    assert app.delivery.lease_needed() >= longest
    app.delivery.check_lease()  # the default 300 s is enough


def test_a_lease_too_short_for_the_provider_is_refused(make_app: AppFactory) -> None:
    app = make_app(provider=smtp(60), lease_seconds=60)
    with pytest.raises(ConfigError, match="REMARKET_LEASE_SECONDS=60 is too short"):
        app.delivery.check_lease()


def test_a_slow_batch_renews_its_lease_instead_of_losing_its_rows(
    make_app: AppFactory, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    wire = Wire()
    app = make_app(provider=wire, lease_seconds=60)
    start_carts(app, clock, [f"p{n}@shop.example" for n in range(10)])
    monkeypatch.setattr(sending.limits, "PREPARE_SECONDS", 1.0)
    still_ours: list[bool] = []
    send = wire.send_many

    def slow(messages: Sequence[OutboundMessage]) -> list[SendResult]:
        clock.advance(timedelta(seconds=55))  # each request takes most of the lease
        ids = {m.delivery_id for m in messages}
        leases = [d.lease_expires_at for d in deliveries(app) if d.id in ids]
        # When the provider answers, the rows must still be leased to this batch: past the
        # lease the sweeper would hand them to another worker, which would send them again.
        still_ours.append(all(_aware(at) > clock.now() for at in leases if at is not None))
        return send(messages)

    monkeypatch.setattr(wire, "send_many", slow)
    run_due(app)
    assert still_ours == [True, True]
    assert {d.status for d in first_reminders(app)} == {"sent"}
    assert len(wire.delivered) == 10


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
