"""A worker that dies mid-send, on SQLite and PostgreSQL: resolved through Resend's
idempotency key without a second send, and re-sent blind (counted) for a provider without one.

The Resend double implements the replay rules: a key seen before with the same body answers
the first response and sends nothing, with another body 409 ``invalid_idempotent_request``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import event, inspect, select, update

from remarket_mailer.bootstrap import App
from remarket_mailer.db.migrate import downgrade, upgrade
from remarket_mailer.db.models import Delivery
from remarket_mailer.delivery.base import OutboundMessage, SendResult
from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.delivery.providers.resend import ResendProvider
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from remarket_mailer.services.dispatch import dispatch_due
from tests.conftest import T0, AppFactory
from tests.helpers import cart_event, consent_event, deliveries, post, profile_event, run_due

LEASE = timedelta(minutes=5)


class WorkerDied(BaseException):
    """The process ends mid-batch (OOM kill, SIGKILL): nothing below gets to record a result."""


class FakeResend:
    """``POST /emails/batch`` with Resend's idempotency rules; counts what really went out."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.sends: Counter[int] = Counter()
        self.answers: dict[str, tuple[bytes, dict[str, Any]]] = {}
        self.timeout_after_send = False
        self._ids = 0
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
            key = request.headers["Idempotency-Key"]
            if key in self.answers:
                body, answer = self.answers[key]
                if body == request.content:
                    return httpx.Response(200, json=answer)
                return httpx.Response(
                    409,
                    json={
                        "statusCode": 409,
                        "name": "invalid_idempotent_request",
                        "message": "Same idempotency key used with a different request payload.",
                    },
                )
            items = json.loads(request.content)
            data = []
            for item in items:
                self._ids += 1
                data.append({"id": f"re-{self._ids}"})
                self.sends[_delivery_id(item)] += 1
            self.answers[key] = (request.content, {"data": data})
        if self.timeout_after_send:
            raise httpx.ReadTimeout("the answer never came", request=request)
        return httpx.Response(200, json={"data": data})

    def keys(self) -> list[str]:
        return [r.headers["Idempotency-Key"] for r in self.requests]


def _delivery_id(item: dict[str, Any]) -> int:
    return int(next(t["value"] for t in item["tags"] if t["name"] == "delivery_id"))


class DyingResend(ResendProvider):
    """Resend whose worker dies right after the request reached Resend, while ``dying``."""

    dying = True

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        results = super().send_many(messages)
        if self.dying:
            raise WorkerDied
        return results


class DiesBeforeTheCall(ResendProvider):
    """Resend whose worker dies after the keys were stored, before the request left."""

    dying = True

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        if self.dying:
            raise WorkerDied
        return super().send_many(messages)


class DyingMemory(MemoryProvider):
    """A provider without idempotency key whose worker dies after the send, while ``dying``."""

    dying = True

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        results = super().send_many(messages)
        if self.dying:
            raise WorkerDied
        return results


@pytest.fixture
def fake() -> FakeResend:
    return FakeResend()


def shoppers(app: App, count: int, at: timedelta = timedelta(0), first: int = 0) -> None:
    client = TestClient(create_api(app))
    for n in range(first, first + count):
        who = f"shopper{n}@example.org"
        post(client, consent_event(T0 - timedelta(minutes=5), email=who))
        post(client, cart_event(T0 + at, cart_id=f"cart-{n}", contact={"email": who}))


def send_key_updates(app: App) -> list[str]:
    """Every statement that stores request keys, from now on."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE DELIVERIES SET SEND_KEY"):
            seen.append(statement)

    event.listen(app.engine, "before_cursor_execute", record)
    return seen


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def first_reminders(app: App) -> list[Delivery]:
    return [d for d in deliveries(app) if d.step_id == "reminder_1"]


def test_a_dead_worker_is_resolved_by_the_key_without_a_second_send(
    make_app: AppFactory,
    clock: VirtualClock,
    fake: FakeResend,
    cart_only: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = DyingResend("re_key", transport=httpx.MockTransport(fake))
    app = make_app(provider=provider, workflows_dir=cart_only)
    shoppers(app, 3)
    clock.set(T0 + timedelta(hours=1))
    stores = send_key_updates(app)

    with pytest.raises(WorkerDied):
        run_due(app)

    assert len(stores) == 1, "one statement stores the batch's keys, before the call"
    stuck = first_reminders(app)
    assert [d.status for d in stuck] == ["sending"] * 3
    assert {d.send_key for d in stuck} == {fake.keys()[0]}
    assert dict(fake.sends) == {d.id: 1 for d in stuck}

    provider.dying = False
    run_due(app)  # the lease has not run out: the rows stay where they are
    assert len(fake.requests) == 1
    clock.set(T0 + timedelta(hours=1) + LEASE + timedelta(seconds=1))
    # The replay happens minutes of wall-clock time later too: the links it renders (signed
    # tokens) must still be byte for byte the first ones.
    from itsdangerous import TimestampSigner

    later = int(time.time()) + 600
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: later)
    before = metric("remarket_resent_unknown_total")
    report = run_due(app)

    assert (report.resent_by_key, report.resent_unknown) == (3, 0)
    assert metric("remarket_resent_unknown_total") == before
    assert fake.keys() == [fake.keys()[0]] * 2, "the same request under the same key"
    assert fake.requests[1].content == fake.requests[0].content
    assert dict(fake.sends) == {d.id: 1 for d in stuck}, "Resend replayed, sent nothing"
    first_ids = [item["id"] for item in fake.answers[fake.keys()[0]][1]["data"]]
    done = first_reminders(app)
    assert [d.status for d in done] == ["sent"] * 3
    assert [d.provider_message_id for d in done] == first_ids
    assert {d.send_key for d in done} == {None}, "a row that ends drops its key"
    assert len(stores) == 1, "a replay stores nothing new"


def test_a_changed_group_gets_409_and_its_rows_count_as_sent(
    make_app: AppFactory, clock: VirtualClock, fake: FakeResend, cart_only: Path
) -> None:
    provider = DyingResend("re_key", transport=httpx.MockTransport(fake))
    app = make_app(provider=provider, workflows_dir=cart_only)
    shoppers(app, 3)
    clock.set(T0 + timedelta(hours=1))
    with pytest.raises(WorkerDied):
        run_due(app)
    key = fake.keys()[0]
    # Meanwhile one of them unsubscribes: the group that goes out again is smaller.
    client = TestClient(create_api(app))
    post(client, consent_event(clock.now(), email="shopper1@example.org", status="withdrawn"))
    provider.dying = False
    clock.set(T0 + timedelta(hours=1) + LEASE + timedelta(seconds=1))
    before = metric("remarket_already_sent_total", provider="resend")

    report = run_due(app)

    assert report.resent_by_key == 3
    assert fake.keys() == [key, key]
    assert len(json.loads(fake.requests[1].content)) == 2
    assert sum(fake.sends.values()) == 3, "nothing went out a second time"
    rows = {d.contact_id: d for d in first_reminders(app)}
    statuses = sorted((d.status, d.reason) for d in rows.values())
    assert statuses == [("sent", None), ("sent", None), ("skipped", "consent_withdrawn")]
    for row in rows.values():
        if row.status == "sent":
            assert row.provider_message_id is None
            assert row.detail is not None and key in row.detail and "already sent" in row.detail
            assert row.send_key is None
    assert metric("remarket_already_sent_total", provider="resend") == before + 2
    clock.set(T0 + timedelta(hours=2))
    run_due(app)
    assert sum(fake.sends.values()) == 3


def test_a_timeout_is_retried_under_the_same_key_next_to_new_rows(
    make_app: AppFactory, clock: VirtualClock, fake: FakeResend, cart_only: Path
) -> None:
    provider = ResendProvider("re_key", transport=httpx.MockTransport(fake))
    app = make_app(provider=provider, workflows_dir=cart_only)
    shoppers(app, 2)
    clock.set(T0 + timedelta(hours=1))
    fake.timeout_after_send = True  # Resend sent them; the answer is lost

    run_due(app)

    key = fake.keys()[0]
    waiting = first_reminders(app)
    assert [(d.status, d.reason, d.send_key) for d in waiting] == [("scheduled", "retry", key)] * 2
    fake.timeout_after_send = False
    shoppers(app, 1, at=timedelta(minutes=4), first=2)  # due with the retry
    clock.set(T0 + timedelta(hours=1, minutes=5))

    run_due(app)

    assert fake.keys()[1:].count(key) == 1 and len(fake.requests) == 3
    assert json.loads(fake.requests[fake.keys().index(key, 1)].content) == json.loads(
        fake.requests[0].content
    )
    done = first_reminders(app)
    assert [d.status for d in done] == ["sent"] * 3
    assert dict(fake.sends) == {d.id: 1 for d in done}, "one real send per delivery"


def test_a_row_deferred_on_the_replay_leaves_the_group_and_is_not_lost(
    make_app: AppFactory, clock: VirtualClock, fake: FakeResend, cart_only: Path
) -> None:
    provider = DiesBeforeTheCall("re_key", transport=httpx.MockTransport(fake))
    app = make_app(provider=provider, workflows_dir=cart_only)
    client = TestClient(create_api(app))
    cart_at = T0 - timedelta(minutes=10)  # the first reminder is due at 09:50 UTC
    for n, zone in enumerate(["Europe/Amsterdam", "Pacific/Noumea"]):  # UTC+1 and UTC+11
        who = f"shopper{n}@example.org"
        post(client, profile_event(cart_at, email=who, timezone=zone))
        post(client, consent_event(cart_at, email=who))
        post(client, cart_event(cart_at, cart_id=f"cart-{n}", contact={"email": who}))
    clock.set(T0 + timedelta(minutes=56))  # 20:56 in Noumea, inside its send window
    with pytest.raises(WorkerDied):
        run_due(app)
    key = {d.send_key for d in first_reminders(app)}.pop()
    assert key is not None and fake.requests == [], "the key is stored, Resend never saw it"
    provider.dying = False
    clock.set(T0 + timedelta(minutes=62))  # 21:02 in Noumea: past its send window

    run_due(app)

    amsterdam, noumea = first_reminders(app)
    assert (amsterdam.status, noumea.status, noumea.reason) == ("sent", "scheduled", "deferred")
    assert fake.keys() == [key], "the rest of the group went out under the key"
    assert noumea.send_key is None, "the deferred row left the group"
    clock.set(noumea.due_at)

    run_due(app)

    # Under the old key Resend would answer 409 and the row would count as sent, unsent.
    assert first_reminders(app)[1].status == "sent" and fake.keys()[1] != key
    assert dict(fake.sends) == {amsterdam.id: 1, noumea.id: 1}


def test_the_sweeper_keeps_a_key_group_in_one_broker_message(
    make_app: AppFactory, clock: VirtualClock, fake: FakeResend, cart_only: Path
) -> None:
    provider = DyingResend("re_key", transport=httpx.MockTransport(fake))
    app = make_app(provider=provider, workflows_dir=cart_only, batch_size=3)
    shoppers(app, 3)
    clock.set(T0 + timedelta(hours=1))
    with pytest.raises(WorkerDied):
        run_due(app)
    keyed = sorted(d.id for d in first_reminders(app))
    shoppers(app, 3, at=timedelta(minutes=5), first=3)
    provider.dying = False
    clock.set(T0 + timedelta(hours=1) + LEASE + timedelta(seconds=1))
    messages: list[list[int]] = []

    def broker(ids: Sequence[int]) -> None:
        messages.append(list(ids))
        app.delivery.send(ids)

    # Batches of two would cut the group of three: it travels whole instead.
    report = dispatch_due(app.uow, app.clock, broker, batch_size=2, lease=LEASE)

    assert report.resent_by_key == 3 and report.claimed == 3
    assert keyed in [sorted(m) for m in messages]
    assert sorted(len(m) for m in messages) == [1, 2, 3]
    assert all(d.status == "sent" for d in first_reminders(app))
    assert dict(fake.sends) == {d.id: 1 for d in first_reminders(app)}


def test_a_claim_cut_by_its_limit_takes_the_rest_of_the_key_group(
    make_app: AppFactory, clock: VirtualClock, cart_only: Path
) -> None:
    app = make_app(workflows_dir=cart_only)
    shoppers(app, 12)
    due = sorted(d.id for d in first_reminders(app))
    with app.uow() as session:  # two retries of one request, on both sides of the cut
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_([due[9], due[11]]))
            .values(send_key="remarket-batch-abc")
        )
    clock.set(T0 + timedelta(hours=1))
    messages: list[list[int]] = []

    report = dispatch_due(app.uow, app.clock, messages.append, batch_size=1, lease=LEASE)

    assert report.claimed == 12
    assert [due[9], due[11]] in messages
    assert sorted(i for m in messages for i in m) == due


def test_without_a_key_a_dead_worker_is_sent_again_and_counted(
    make_app: AppFactory, clock: VirtualClock, cart_only: Path
) -> None:
    provider = DyingMemory()
    app = make_app(provider=provider, workflows_dir=cart_only)
    shoppers(app, 2)
    clock.set(T0 + timedelta(hours=1))
    stores = send_key_updates(app)
    with pytest.raises(WorkerDied):
        run_due(app)
    assert stores == [], "no extra round trip for a provider without keys"
    assert {d.send_key for d in first_reminders(app)} == {None}
    provider.dying = False
    clock.set(T0 + timedelta(hours=1) + LEASE + timedelta(seconds=1))
    before = metric("remarket_resent_unknown_total")

    report = run_due(app)

    assert (report.resent_unknown, report.resent_by_key) == (2, 0)
    assert metric("remarket_resent_unknown_total") == before + 2
    sent = Counter(m.delivery_id for m in provider.outbox)
    assert sorted(sent.values()) == [2, 2], "blind: the provider got each one twice"
    assert all(d.status == "sent" for d in first_reminders(app))


@pytest.fixture
def migrated(database_url: str) -> Iterator[str]:
    yield database_url
    upgrade(database_url)  # leave the shared PostgreSQL database at head whatever happened


def test_migration_0004_upgrades_and_downgrades(migrated: str, make_app: AppFactory) -> None:
    app = make_app()
    shoppers(app, 1)
    with app.uow() as session:
        session.execute(update(Delivery).values(send_key="k"))
    app.engine.dispose()

    def columns() -> set[str]:
        with app.engine.connect() as connection:
            return {c["name"] for c in inspect(connection).get_columns("deliveries")}

    def indexes() -> set[str]:
        with app.engine.connect() as connection:
            return {i["name"] for i in inspect(connection).get_indexes("deliveries")}

    downgrade(migrated, "0003")
    assert "send_key" not in columns() and "ix_deliveries_send_key" not in indexes()
    upgrade(migrated)
    assert "send_key" in columns() and "ix_deliveries_send_key" in indexes()
    with app.uow() as session:
        kept = session.execute(select(Delivery.id, Delivery.send_key)).all()
    assert len(kept) == 3 and {key for _, key in kept} == {None}
