"""A provider that refuses the account (an unconfirmed sender signature, then a refused token)
is paused for every worker, its messages kept, and probed when the pause ends: on SQLite and
PostgreSQL, with Postmark's real adapter answering through ``httpx.MockTransport``.

The messages go out once in the end, with one attempt each; nothing is failed or suppressed;
while paused nothing is claimed; the gauge goes 1 → 0; one WARNING per pause, one INFO on
resume.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from remarket_mailer.bootstrap import App
from remarket_mailer.db import consent as consent_db
from remarket_mailer.db import provider_pauses as pause_store
from remarket_mailer.delivery.providers.postmark import PostmarkProvider
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from tests.conftest import T0, AppFactory
from tests.helpers import cart_event, consent_event, deliveries, post, run_due

EMAILS = ("ann@example.org", "bob@example.org", "cy@example.org")


class PostmarkAccount:
    """Postmark's batch endpoint, answering from a script: a list of faults for the next
    requests, then every item accepted."""

    def __init__(self, faults: list[httpx.Response]) -> None:
        self.faults = faults
        self.requests: list[list[str]] = []
        self.accepted: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        items = json.loads(request.content)
        self.requests.append([item["To"] for item in items])
        if self.faults:
            return self.faults.pop(0)
        self.accepted.extend(item["To"] for item in items)
        return httpx.Response(
            200,
            json=[
                {"ErrorCode": 0, "Message": "OK", "MessageID": f"pm-{item['To']}"} for item in items
            ],
        )


def paused_gauge() -> float | None:
    return REGISTRY.get_sample_value("remarket_provider_paused", {"provider": "postmark"})


def faults_counted(reason: str) -> float:
    labels = {"provider": "postmark", "reason": reason}
    return REGISTRY.get_sample_value("remarket_provider_faults_total", labels) or 0.0


def reminders(app: App) -> list[object]:
    return [d for d in deliveries(app) if d.step_id == "reminder_1"]


def start_carts(app: App, clock: VirtualClock) -> None:
    client = TestClient(create_api(app))
    for n, email in enumerate(EMAILS):
        post(client, consent_event(T0 - timedelta(minutes=5), email=email))
        post(client, cart_event(T0, cart_id=f"cart-{n}", contact={"email": email}))
    clock.set(T0 + timedelta(hours=1))


def test_account_faults_pause_the_provider_keep_the_messages_and_a_probe_resumes_it(
    make_app: AppFactory,
    clock: VirtualClock,
    cart_only: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    account = PostmarkAccount(
        [
            httpx.Response(
                422, json={"ErrorCode": 401, "Message": "Sender signature not confirmed."}
            ),
            httpx.Response(401, json={"ErrorCode": 10, "Message": "Bad or missing API token."}),
        ]
    )
    provider = PostmarkProvider(
        "server-token", message_stream="broadcast", transport=httpx.MockTransport(account)
    )
    app = make_app(provider=provider, workflows_dir=cart_only, batch_size=1)
    start_carts(app, clock)
    before = {r: faults_counted(r) for r in ("sender_unverified", "credentials")}
    caplog.set_level(logging.INFO, logger="remarket_mailer.services.provider_pauses")

    # The first request is refused for the account: the provider pauses for 60 s. The two
    # other batches (claimed in the same sweep) are handed back without a request.
    run_due(app)
    assert len(account.requests) == 1
    assert paused_gauge() == 1.0
    first_fault = clock.now()
    for row in reminders(app):
        assert (row.status, row.attempts, row.reason) == ("scheduled", 0, "provider_paused")
        assert row.due_at == first_fault + timedelta(seconds=60)
        assert row.detail is not None and "ErrorCode 401" in row.detail

    # While paused, nothing is claimed.
    clock.set(first_fault + timedelta(seconds=30))
    report = run_due(app)
    assert report.claimed == 0 and len(account.requests) == 1

    # The pause is over: one probe batch (one delivery, batch_size=1); refused again, with a
    # refused token this time: paused twice as long.
    clock.set(first_fault + timedelta(seconds=61))
    report = run_due(app)
    assert report.probes == 1 and report.claimed == 1 and len(account.requests) == 2
    with app.uow() as session:
        pause = pause_store.pause_of(session, "postmark")
    assert pause is not None and pause.faults == 2 and pause.reason == "credentials"
    assert pause.paused_until == clock.now() + timedelta(seconds=120)
    clock.set(clock.now() + timedelta(seconds=60))
    assert run_due(app).claimed == 0 and len(account.requests) == 2

    # The next probe gets through: the pause ends, and the rest follows.
    clock.set(pause.paused_until + timedelta(seconds=1))
    report = run_due(app)
    assert report.probes == 1 and len(account.accepted) == 1
    assert paused_gauge() == 0.0
    with app.uow() as session:
        assert pause_store.pause_of(session, "postmark") is None
    run_due(app)
    run_due(app)

    assert sorted(account.accepted) == sorted(EMAILS)  # each sent once
    rows = reminders(app)
    assert [(r.status, r.attempts) for r in rows] == [("sent", 1)] * 3
    with app.uow() as session:
        assert all(consent_db.suppression_reason(session, e) is None for e in EMAILS)
    assert not any(r.status == "failed" for r in deliveries(app))
    assert faults_counted("sender_unverified") - before["sender_unverified"] == 1
    assert faults_counted("credentials") - before["credentials"] == 1

    pauses_log = [r for r in caplog.records if r.name.endswith("provider_pauses")]
    warnings = [r for r in pauses_log if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "provider=postmark paused 60s" in warnings[0].getMessage()
    assert "sender signature not confirmed" in warnings[0].getMessage()
    assert "REMARKET_PROVIDER_URL" in warnings[1].getMessage()
    resumed = [r for r in pauses_log if "resumed" in r.getMessage()]
    assert len(resumed) == 1 and resumed[0].levelno == logging.INFO


def test_a_batch_taken_while_paused_is_handed_back_untried(
    make_app: AppFactory, clock: VirtualClock, cart_only: object
) -> None:
    """A batch already on the broker when the pause began reaches a worker: it goes back to
    wait for the pause's end, without a request, without an attempt."""
    account = PostmarkAccount([httpx.Response(401, json={"ErrorCode": 10, "Message": "Bad"})])
    provider = PostmarkProvider(
        "t", message_stream="broadcast", transport=account_transport(account)
    )
    app = make_app(provider=provider, workflows_dir=cart_only, batch_size=1)
    start_carts(app, clock)
    batches: list[list[int]] = []
    from remarket_mailer.services.dispatch import dispatch_due

    dispatch_due(app.uow, app.clock, lambda ids: batches.append(list(ids)), batch_size=1)
    assert len(batches) == 3
    app.delivery.send(batches[0])  # refused: the pause starts
    app.delivery.send(batches[1])  # arrives during the pause
    assert len(account.requests) == 1
    rows = {r.id: r for r in reminders(app)}
    held = rows[batches[1][0]]
    assert (held.status, held.attempts, held.reason) == ("scheduled", 0, "provider_paused")
    assert held.due_at == clock.now() + timedelta(seconds=60)


def account_transport(account: PostmarkAccount) -> httpx.MockTransport:
    return httpx.MockTransport(account)


def test_providers_status_shows_the_pause_and_what_to_fix(
    make_app: AppFactory, clock: VirtualClock, cart_only: object, database_url: str
) -> None:
    from typer.testing import CliRunner

    from remarket_mailer.cli import app as cli

    runner = CliRunner()
    env = {"REMARKET_DATABASE_URL": database_url}
    assert "no provider is paused" in runner.invoke(cli, ["providers", "status"], env=env).output
    account = PostmarkAccount([httpx.Response(401, json={"ErrorCode": 10, "Message": "Bad"})])
    provider = PostmarkProvider(
        "t", message_stream="broadcast", transport=account_transport(account)
    )
    app = make_app(provider=provider, workflows_dir=cart_only)
    start_carts(app, clock)
    run_due(app)
    result = runner.invoke(cli, ["providers", "status"], env=env)
    assert result.exit_code == 0, result.output
    assert "postmark: " in result.output and "reason=credentials" in result.output
    assert "REMARKET_PROVIDER_URL" in result.output
