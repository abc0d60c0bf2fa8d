"""One batch's results are recorded together, on SQLite and PostgreSQL: every row ends in the
status its result says, with its own provider id or reason, and a row that another worker
moved meanwhile keeps what that worker wrote."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import update

from remarket_mailer.bootstrap import App
from remarket_mailer.db import consent as consent_db
from remarket_mailer.db import contacts as contacts_db
from remarket_mailer.db import deliveries as deliveries_db
from remarket_mailer.db.models import Delivery
from remarket_mailer.delivery.base import (
    OutboundMessage,
    Permanent,
    Provider,
    SendResult,
    Sent,
    Transient,
)
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.domain.states import DeliveryStatus, IllegalTransition
from remarket_mailer.entrypoints.api import create_api
from tests.conftest import T0, AppFactory
from tests.helpers import cart_event, consent_event, deliveries, post, run_due


class Scripted(Provider):
    """Answers per recipient: ``sent`` (with a provider id), ``transient`` or ``permanent``."""

    name = "scripted"
    max_batch = 100

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.batches: list[list[int]] = []
        self.during_call: Callable[[Sequence[OutboundMessage]], None] | None = None

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        self.batches.append([m.delivery_id for m in messages])
        if self.during_call is not None:
            self.during_call(messages)
        results: list[SendResult] = []
        for message in messages:
            answer = self.answers[message.to_addr]
            if answer == "sent":
                results.append(Sent(f"id-{message.to_addr}"))
            elif answer == "long id":
                results.append(Sent("m" * 300))
            elif answer == "transient":
                results.append(Transient("451 try later", retry_after=600))
            elif answer == "bounce":
                results.append(Permanent("406 inactive recipient", hard_bounce=True))
            else:
                results.append(Permanent("550 no such user"))
        return results


def start_carts(app: App, clock: VirtualClock, emails: Sequence[str]) -> None:
    client = TestClient(create_api(app))
    for n, email in enumerate(emails):
        post(client, consent_event(T0 - timedelta(minutes=5), email=email))
        post(client, cart_event(T0, cart_id=f"cart-{n}", contact={"email": email}))
    clock.set(T0 + timedelta(hours=1))


def counted(outcome: str) -> float:
    labels = {"workflow": "abandoned_cart", "outcome": outcome}
    return REGISTRY.get_sample_value("remarket_deliveries_total", labels) or 0.0


def by_email(app: App) -> dict[str, Delivery]:
    with app.uow() as session:
        contacts = contacts_db.contact_facts_by_id(session, {d.contact_id for d in deliveries(app)})
    return {
        str(contacts[d.contact_id].email): d for d in deliveries(app) if d.step_id == "reminder_1"
    }


def test_a_provider_id_longer_than_its_column_is_cut_and_the_send_recorded(
    make_app: AppFactory, clock: VirtualClock, cart_only: object
) -> None:
    answers = {"ann@example.org": "long id", "bob@example.org": "sent"}
    app = make_app(provider=Scripted(answers), workflows_dir=cart_only)
    start_carts(app, clock, list(answers))

    assert run_due(app).claimed == 2

    rows = by_email(app)
    assert (rows["ann@example.org"].status, rows["ann@example.org"].provider_message_id) == (
        "sent",
        "m" * 255,
    )
    assert rows["bob@example.org"].provider_message_id == "id-bob@example.org"


def test_sent_retried_and_failed_rows_of_one_batch_each_end_right(
    make_app: AppFactory, clock: VirtualClock, cart_only: object
) -> None:
    answers = {
        "ann@example.org": "sent",
        "bob@example.org": "transient",
        "cy@example.org": "permanent",
        "di@example.org": "bounce",
        "ed@example.org": "sent",
    }
    provider = Scripted(answers)
    app = make_app(provider=provider, workflows_dir=cart_only)
    start_carts(app, clock, list(answers))
    before = {outcome: counted(outcome) for outcome in ("sent", "transient", "permanent")}

    report = run_due(app)

    assert report.claimed == 5
    assert {outcome: counted(outcome) - n for outcome, n in before.items()} == {
        "sent": 2,
        "transient": 1,
        "permanent": 2,
    }
    assert len(provider.batches) == 1 and len(provider.batches[0]) == 5
    rows = by_email(app)
    for email in ("ann@example.org", "ed@example.org"):
        row = rows[email]
        assert (row.status, row.provider, row.provider_message_id) == (
            "sent",
            "scripted",
            f"id-{email}",
        )
        assert row.sent_at == clock.now() and row.subject and row.lease_expires_at is None
    retried = rows["bob@example.org"]
    assert (retried.status, retried.reason, retried.detail) == (
        "scheduled",
        "retry",
        "451 try later",
    )
    assert retried.due_at >= clock.now() + timedelta(seconds=600)
    assert retried.sent_at is None and retried.provider_message_id is None
    for email, detail in (("cy@example.org", "550 no such user"), ("di@example.org", "406")):
        failed = rows[email]
        assert (failed.status, failed.reason) == ("failed", "permanent")
        assert failed.detail is not None and failed.detail.startswith(detail)
        assert failed.sent_at is None and failed.provider_message_id is None
    with app.uow() as session:
        assert consent_db.suppression_reason(session, "di@example.org") == "hard_bounce"
        assert consent_db.suppression_reason(session, "cy@example.org") is None

    # The retry goes out later and keeps nothing of its failed attempt but the attempt count.
    answers["bob@example.org"] = "sent"
    clock.set(clock.now() + timedelta(minutes=15))
    run_due(app)
    again = by_email(app)["bob@example.org"]
    assert (again.status, again.provider_message_id, again.attempts) == (
        "sent",
        "id-bob@example.org",
        2,
    )
    assert len(provider.batches) == 2 and len(provider.batches[1]) == 1


def test_a_row_another_worker_moved_meanwhile_is_not_overwritten(
    make_app: AppFactory, clock: VirtualClock, cart_only: object
) -> None:
    answers = {"ann@example.org": "sent", "bob@example.org": "sent", "cy@example.org": "sent"}
    provider = Scripted(answers)
    app = make_app(provider=provider, workflows_dir=cart_only)
    start_carts(app, clock, list(answers))
    moved: list[int] = []

    def sweeper_takes_one_back(messages: Sequence[OutboundMessage]) -> None:
        # As the sweeper does when a lease ran out: the row is queued again, for another worker.
        moved.append(messages[1].delivery_id)
        with app.uow() as session:
            session.execute(
                update(Delivery)
                .where(Delivery.id == moved[0], Delivery.status == DeliveryStatus.SENDING)
                .values(status=DeliveryStatus.QUEUED, reason="reclaimed")
            )

    provider.during_call = sweeper_takes_one_back
    run_due(app)

    rows = {d.id: d for d in deliveries(app) if d.step_id == "reminder_1"}
    assert (rows[moved[0]].status, rows[moved[0]].reason) == ("queued", "reclaimed")
    assert rows[moved[0]].provider_message_id is None and rows[moved[0]].sent_at is None
    others = [d for i, d in rows.items() if i != moved[0]]
    assert [d.status for d in others] == ["sent", "sent"]


def test_finish_deliveries_changes_only_the_named_columns_of_rows_still_expected(
    make_app: AppFactory, clock: VirtualClock, cart_only: object
) -> None:
    app = make_app(workflows_dir=cart_only)
    start_carts(app, clock, ["ann@example.org", "bob@example.org", "cy@example.org"])
    a, b, c = (d.id for d in deliveries(app) if d.step_id == "reminder_1")
    now = clock.now()
    with app.uow() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_([a, b, c]))
            .values(status=DeliveryStatus.SENDING, reason="retry", detail="earlier attempt")
        )
        session.execute(
            update(Delivery).where(Delivery.id == c).values(status=DeliveryStatus.SKIPPED)
        )
    later = now + timedelta(minutes=1)
    with app.uow() as session:
        done = deliveries_db.finish_deliveries(
            session,
            DeliveryStatus.SENDING,
            [
                {
                    "id": a,
                    "status": DeliveryStatus.SENT,
                    "sent_at": now,
                    "provider_message_id": "p",
                },
                {"id": b, "status": DeliveryStatus.FAILED, "reason": "permanent", "detail": None},
                {
                    "id": c,
                    "status": DeliveryStatus.SENT,
                    "sent_at": now,
                    "provider_message_id": "q",
                },
            ],
            later,
        )
    assert done == 2
    rows = {d.id: d for d in deliveries(app)}
    sent, failed, skipped = rows[a], rows[b], rows[c]
    # A column a change does not name keeps its value; one it names as None becomes NULL.
    assert (sent.status, sent.sent_at, sent.provider_message_id) == ("sent", now, "p")
    assert (sent.reason, sent.detail, sent.updated_at) == ("retry", "earlier attempt", later)
    assert (failed.status, failed.reason, failed.detail, failed.sent_at) == (
        "failed",
        "permanent",
        None,
        None,
    )
    assert (skipped.status, skipped.provider_message_id, skipped.sent_at) == ("skipped", None, None)
    with app.uow() as session:
        assert deliveries_db.finish_deliveries(session, DeliveryStatus.SENDING, [], later) == 0


def test_a_hard_bounce_skips_the_contacts_other_pending_emails(
    make_app: AppFactory, clock: VirtualClock, cart_only: object
) -> None:
    # A bounce at send time suppresses the address, as the ESP's bounce webhook does, and like
    # it skips what was still to go to that contact: a dead mailbox gets no further reminders.
    answers = {"cy@example.org": "permanent", "di@example.org": "bounce"}
    app = make_app(provider=Scripted(answers), workflows_dir=cart_only)
    start_carts(app, clock, list(answers))

    run_due(app)

    with app.uow() as session:
        contacts = contacts_db.contact_facts_by_id(session, {d.contact_id for d in deliveries(app)})
    later: dict[str, list[Delivery]] = {}
    for row in deliveries(app):
        if row.step_id != "reminder_1":
            later.setdefault(str(contacts[row.contact_id].email), []).append(row)
    assert later["di@example.org"] and later["cy@example.org"]
    for row in later["di@example.org"]:
        assert (row.status, row.reason, row.detail) == ("skipped", "suppressed", "hard_bounce")
    # A permanent refusal that is not a bounce says nothing about the mailbox.
    assert {row.status for row in later["cy@example.org"]} == {"scheduled"}
    with app.uow() as session:
        assert consent_db.suppression_reason(session, "di@example.org") == "hard_bounce"


def test_an_illegal_change_is_refused_before_anything_is_written(
    make_app: AppFactory, clock: VirtualClock, cart_only: object
) -> None:
    app = make_app(workflows_dir=cart_only)
    start_carts(app, clock, ["ann@example.org", "bob@example.org"])
    a, b = (d.id for d in deliveries(app) if d.step_id == "reminder_1")
    with pytest.raises(IllegalTransition, match="from scheduled to sent"), app.uow() as session:
        deliveries_db.finish_deliveries(
            session,
            DeliveryStatus.SCHEDULED,
            [{"id": a, "status": DeliveryStatus.SKIPPED}, {"id": b, "status": "sent"}],
            clock.now(),
        )
    assert {d.status for d in deliveries(app) if d.id in (a, b)} == {"scheduled"}
