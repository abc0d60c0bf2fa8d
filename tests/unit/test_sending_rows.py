"""Sending reads plain rows, not ORM objects, and inlines id lists into its SQL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import ColumnElement, create_engine, select
from sqlalchemy.orm import Session

from remarket_mailer.db.commerce import CartFacts
from remarket_mailer.db.consent import email_hash
from remarket_mailer.db.models import Cart, Suppression
from remarket_mailer.db.sql import in_hex_digests, in_ids, not_in_ids
from remarket_mailer.workflows.context import cart_view

ITEMS = {"items": [{"name": "Mug", "quantity": 2, "unit_price": "12.50"}]}


@pytest.mark.parametrize(
    ("items", "currency", "total", "url"),
    [
        (ITEMS, "EUR", Decimal("25.00"), "https://shop.example/checkout"),
        ({}, None, None, None),
    ],
)
def test_sending_sees_a_cart_as_ingest_does(
    items: dict[str, Any], currency: str | None, total: Decimal | None, url: str | None
) -> None:
    row = Cart(cart_id="c1", items=items, currency=currency, total=total, checkout_url=url)
    facts = CartFacts(cart_id="c1", currency=currency, total=total, items=items, checkout_url=url)
    assert cart_view(facts) == cart_view(row)


def inlined(condition: ColumnElement[bool]) -> str:
    statement = select(Suppression.id).where(condition)
    return str(statement.compile(compile_kwargs={"render_postcompile": True}))


SQLITE = Session(create_engine("sqlite://"))
POSTGRES = Session(create_engine("postgresql+psycopg://"))  # never connects: compiling only


def test_sqlite_inlines_only_numbers_and_hex_digests() -> None:
    assert "IN (3, 1)" in inlined(in_ids(SQLITE, Suppression.id, "ids", [3, 1]))
    assert "NOT IN (3)" in inlined(not_in_ids(SQLITE, Suppression.id, "ids", [3]))
    with pytest.raises(ValueError):
        in_ids(SQLITE, Suppression.id, "ids", ["1) OR (1=1"])  # type: ignore[list-item]
    digest = email_hash("Ann@Example.org")
    assert f"IN ('{digest}')" in inlined(
        in_hex_digests(SQLITE, Suppression.email_hash, "h", [digest])
    )
    with pytest.raises(ValueError):
        in_hex_digests(SQLITE, Suppression.email_hash, "h", ["') OR ('1'='1"])


def test_postgres_sends_one_array_literal_whatever_the_count() -> None:
    """The statement's text stays the same from batch to batch; the ids travel as one string."""
    texts = set()
    for ids in ([3, 1], list(range(500))):
        compiled = (
            select(Suppression.id)
            .where(in_ids(POSTGRES, Suppression.id, "ids", ids))
            .compile(dialect=POSTGRES.get_bind().dialect)
        )
        texts.add(str(compiled))
        assert compiled.params["ids"] == "{" + ",".join(map(str, ids)) + "}"
    assert len(texts) == 1
    text = texts.pop()
    # Untyped, so PostgreSQL binds it as bigint[]: a ::VARCHAR parameter was cast again for
    # every row of a sequential scan (50 ms a lookup on freshly loaded tables).
    assert "= ANY (CAST(%(ids)s AS BIGINT[]))" in text
    excluded = select(Suppression.id).where(not_in_ids(POSTGRES, Suppression.id, "x", [7]))
    assert "!= ALL (CAST(%(x)s AS BIGINT[]))" in str(
        excluded.compile(dialect=POSTGRES.get_bind().dialect)
    )
    with pytest.raises(ValueError):
        in_ids(POSTGRES, Suppression.id, "ids", ["1}"])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        in_hex_digests(POSTGRES, Suppression.email_hash, "h", ["a,b"])
