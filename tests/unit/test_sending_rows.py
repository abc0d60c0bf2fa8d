"""Sending reads plain rows, not ORM objects, and inlines id lists into its SQL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import ColumnElement, select

from remarket_mailer.db.models import Cart, Suppression
from remarket_mailer.db.repository import CartFacts, _hex_digests, _int_ids, email_hash
from remarket_mailer.services.ingest import cart_view

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


def test_only_numbers_and_hex_digests_are_inlined_into_sql() -> None:
    assert "IN (3, 1)" in inlined(Suppression.id.in_(_int_ids("ids", [3, 1])))
    with pytest.raises(ValueError):
        _int_ids("ids", ["1) OR (1=1"])  # type: ignore[list-item]
    digest = email_hash("Ann@Example.org")
    assert f"IN ('{digest}')" in inlined(Suppression.email_hash.in_(_hex_digests("h", [digest])))
    with pytest.raises(ValueError):
        _hex_digests("hashes", ["') OR ('1'='1"])
