"""db/tracking.py on SQLite and PostgreSQL: tracking events recorded once, with ids cut to the
model's columns, soft bounces counted per address, one-time tokens accepted once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from remarket_mailer.db import tracking as tracking_db
from remarket_mailer.db.models import TrackingEvent as TrackingEventRow
from remarket_mailer.tracking.events import TrackingEvent
from tests.conftest import T0, AppFactory

# The columns' own sizes, so the test fails if db/tracking.py assumed other ones.
RAW_ID_COLUMN: int = TrackingEventRow.__table__.c.raw_id.type.length  # type: ignore[attr-defined]
MESSAGE_ID_COLUMN: int = TrackingEventRow.__table__.c.provider_message_id.type.length  # type: ignore[attr-defined]


def event(**overrides: Any) -> TrackingEvent:
    values: dict[str, Any] = {
        "kind": "bounced",
        "email": "ann@example.org",
        "provider": "sendgrid",
        "provider_message_id": "msg-1",
        "delivery_id": "42",
        "occurred_at": T0,
        "bounce_class": "soft",
        "detail": "550 5.2.2 mailbox full",
        "raw_id": "evt-1",
    }
    values.update(overrides)
    return TrackingEvent(**values)


def test_only_new_events_come_back_and_as_they_were_stored(make_app: AppFactory) -> None:
    app = make_app()
    longest = RAW_ID_COLUMN
    events = [
        event(raw_id="a" * longest, provider_message_id="m" * MESSAGE_ID_COLUMN),
        event(raw_id="b" * (longest + 1), provider_message_id="m" * (longest + 1)),
        event(raw_id="c", delivery_id="²", detail="bad \x00 byte \ud800"),
    ]
    with app.uow() as session:
        new = tracking_db.record_tracking_events(session, events, T0)
    assert [e.raw_id for e in new] == [e.raw_id for e in events]
    assert [e.provider_message_id for e in new] == [
        "m" * MESSAGE_ID_COLUMN,
        None,
        "msg-1",
    ]
    assert [e.delivery_id for e in new] == ["42", "42", None]
    assert new[2].detail == "bad  byte \ufffd"
    with app.uow() as session:
        rows = session.scalars(select(TrackingEventRow).order_by(TrackingEventRow.id)).all()
        assert (rows[0].raw_id, rows[2].raw_id) == ("a" * longest, "c")
        # One character too long for the column: kept as its hash, which still tells it apart.
        assert rows[1].raw_id.startswith("sha256:") and len(rows[1].raw_id) == len("sha256:") + 64
        assert rows[2].detail == "bad  byte \ufffd"
        assert [r.delivery_id for r in rows] == [42, 42, None]
        # A redelivery of all three (the long id hashes the same way) is not new.
        assert tracking_db.record_tracking_events(session, events, T0) == []
        assert len(session.scalars(select(TrackingEventRow)).all()) == 3


def test_events_without_an_esp_id_are_recognised_when_they_come_again(
    make_app: AppFactory,
) -> None:
    app = make_app()
    first = event(raw_id=None)
    with app.uow() as session:
        assert tracking_db.record_tracking_events(session, [first], T0) == [first]
        assert tracking_db.record_tracking_events(session, [first], T0 + timedelta(hours=1)) == []
        later = event(raw_id=None, occurred_at=T0 + timedelta(seconds=1))
        assert tracking_db.record_tracking_events(session, [later], T0) == [later]
        [derived, _] = session.scalars(select(TrackingEventRow.raw_id)).all()
    assert derived.startswith("derived:")


def test_soft_bounces_count_per_address_in_any_spelling_since_a_time(
    make_app: AppFactory,
) -> None:
    app = make_app()
    events = [
        event(raw_id="s1", occurred_at=T0 - timedelta(days=40)),
        event(raw_id="s2", occurred_at=T0 - timedelta(days=2), email="Ann@Example.org"),
        event(raw_id="s3", occurred_at=T0 - timedelta(days=1)),
        event(raw_id="h1", occurred_at=T0, bounce_class="hard"),
        event(raw_id="o1", occurred_at=T0, email="bob@example.org"),
    ]
    with app.uow() as session:
        tracking_db.record_tracking_events(session, events, T0)
        since = T0 - timedelta(days=30)
        assert tracking_db.soft_bounce_count(session, "ANN@example.org", since) == 2
        assert (
            tracking_db.soft_bounce_count(session, "ann@example.org", T0 - timedelta(days=50)) == 3
        )
        assert tracking_db.soft_bounce_count(session, "carl@example.org", since) == 0


def test_a_token_is_accepted_once_while_it_is_remembered(make_app: AppFactory) -> None:
    app = make_app()
    keep = timedelta(minutes=20)
    with app.uow() as session:
        assert tracking_db.remember_webhook_token(session, "mailgun", "tok", T0, keep)
        assert not tracking_db.remember_webhook_token(session, "mailgun", "tok", T0, keep)
        assert tracking_db.remember_webhook_token(session, "other", "tok", T0, keep)
        assert tracking_db.remember_webhook_token(session, "mailgun", "tok", T0 + keep * 2, keep)
