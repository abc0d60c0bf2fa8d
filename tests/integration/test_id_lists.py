"""Send-path id lists on PostgreSQL (one array parameter) select exactly what IN would."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from remarket_mailer.db.consent import email_hash
from remarket_mailer.db.engine import make_engine
from remarket_mailer.db.models import Contact, Suppression
from remarket_mailer.db.sql import in_hex_digests, in_ids, not_in_ids
from tests.conftest import T0, truncate_all


def test_id_lists_bind_as_arrays_and_select_exactly(postgres_url: str) -> None:
    truncate_all(postgres_url)
    engine = make_engine(postgres_url)
    try:
        with Session(engine) as session, session.begin():
            session.execute(
                text(
                    "INSERT INTO contacts (id, email, attributes, created_at, updated_at) "
                    "SELECT g, 'c' || g || '@example.org', '{}', now(), now() "
                    "FROM generate_series(1, 2000) AS g"
                )
            )
            wanted = list(range(1, 2000, 4))
            found = session.scalars(
                select(Contact.id).where(in_ids(session, Contact.id, "ids", wanted))
            )
            assert sorted(found) == wanted
            rest = session.scalars(
                select(Contact.id).where(
                    in_ids(session, Contact.id, "ids", [1, 2, 3]),
                    not_in_ids(session, Contact.id, "x", [2]),
                )
            )
            assert sorted(rest) == [1, 3]
            digest = email_hash("c7@example.org")
            session.add(Suppression(email_hash=digest, reason="complaint", created_at=T0))
            session.flush()
            by_hash = session.scalars(
                select(Suppression.reason).where(
                    in_hex_digests(
                        session, Suppression.email_hash, "h", [digest, email_hash("x@y.z")]
                    )
                )
            )
            assert list(by_hash) == ["complaint"]
    finally:
        engine.dispose()
