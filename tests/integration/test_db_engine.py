"""Many new rows of a table in one flush take their ids from its sequence first (one round
trip for every table), so the INSERT needs no RETURNING; ids stay unique and the sequence
goes on from there."""

from __future__ import annotations

from datetime import timedelta, timezone

from sqlalchemy import event, select

from remarket_mailer.db import sql as sql_db
from remarket_mailer.db.engine import PREASSIGN_FROM
from remarket_mailer.db.models import Contact, Event
from remarket_mailer.db.sql import COPY_FROM
from tests.conftest import T0, AppFactory


def test_bulk_flush_ids_come_from_the_sequence(make_app: AppFactory) -> None:
    app = make_app()
    statements: list[str] = []

    @event.listens_for(app.engine, "before_cursor_execute")
    def record(_c: object, _cur: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    many = [
        Contact(email=f"bulk{n}@example.org", attributes={}, created_at=T0, updated_at=T0)
        for n in range(PREASSIGN_FROM + 2)
    ]
    with app.uow() as session:
        session.add_all(many)
        session.flush()
        assert all(c.id is not None for c in many)
    with app.uow() as session:
        one = Contact(email="single@example.org", attributes={}, created_at=T0, updated_at=T0)
        session.add(one)
        session.flush()
    ids = [c.id for c in many]
    assert len(set(ids)) == len(ids) and one.id not in ids
    with app.uow() as session:
        stored = set(session.scalars(select(Contact.id)))
    assert stored == {*ids, one.id}
    inserts = [s for s in statements if s.startswith("INSERT INTO contacts")]
    if app.engine.dialect.name == "postgresql":
        assert any("nextval" in s for s in statements)
        # The bulk insert names the ids and returns nothing; the single one still returns.
        assert "RETURNING" not in inserts[0] and "RETURNING" in inserts[1]


def test_many_rows_through_copy_read_back_as_written(make_app: AppFactory) -> None:
    """Enough rows that PostgreSQL takes them through COPY: text that COPY must escape, JSON,
    times in other zones and NULLs come back exactly as an executemany would store them."""
    app = make_app()
    tricky = 'tab\there\nnew line \\N back\\slash "quoted" é 😀'
    amsterdam = timezone(timedelta(hours=1))
    rows = [
        {
            "event_id": f"{tricky}-{n}",
            "type": "cart.updated",
            "occurred_at": (T0 + timedelta(minutes=n)).astimezone(amsterdam),
            "received_at": T0,
            "contact_id": None,
            "body_hash": "x" * 64,
            "payload": {"text": tricky, "n": n, "nested": [1, None, {"k": "\t"}]},
        }
        for n in range(COPY_FROM + 1)
    ]
    statements: list[str] = []

    @event.listens_for(app.engine, "before_cursor_execute")
    def record(_c: object, _cur: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    with app.uow() as session:
        sql_db.insert_rows(session, Event, rows)
    inserts = [s for s in statements if s.startswith("INSERT INTO events")]
    assert len(inserts) == (0 if app.engine.dialect.name == "postgresql" else 1)
    with app.uow() as session:
        stored = {e.event_id: e for e in session.scalars(select(Event))}
    assert len(stored) == len(rows)
    for row in rows:
        got = stored[row["event_id"]]
        assert got.payload == row["payload"]
        assert got.occurred_at == row["occurred_at"] and got.occurred_at.tzinfo is not None
        assert got.contact_id is None and got.id is not None
