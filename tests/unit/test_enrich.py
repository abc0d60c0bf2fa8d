"""Enrichment from the catalog, without a database: what the event gives wins."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from remarket_mailer.db.catalog import ProductFacts
from remarket_mailer.errors import ValidationError
from remarket_mailer.schemas import OrderPlaced, ProductViewed, parse_event
from remarket_mailer.services.ingest.enrich import enrich, product_ids

MUG = ProductFacts(
    "mug",
    "Stoneware mug",
    "https://shop.example/p/mug",
    "https://cdn.shop.example/mug.jpg",
    Decimal("12.50"),
    None,
    "EUR",
    "Mugs",
    True,
)
AT = datetime(2026, 12, 1, tzinfo=UTC).isoformat()


def order(**fields: Any) -> OrderPlaced:
    event = parse_event(
        {
            "event_id": "e",
            "type": "order.placed",
            "occurred_at": AT,
            "contact": {"email": "a@example.org"},
            "order_id": "o",
            "currency": "EUR",
            "total": "10.00",
            **fields,
        }
    )
    assert isinstance(event, OrderPlaced)
    return event


def test_lines_and_recommendations_fill_from_the_catalog() -> None:
    event = order(
        items=[{"product_id": "mug", "quantity": 1}], recommendations=[{"product_id": "mug"}]
    )
    assert product_ids(event) == {"mug"}
    done = enrich(event, {"mug": MUG})
    assert isinstance(done, OrderPlaced)
    (line,) = done.items
    assert (line.name, line.unit_price, str(line.image_url)) == (
        "Stoneware mug",
        Decimal("12.50"),
        "https://cdn.shop.example/mug.jpg",
    )
    assert done.recommendations[0].name == "Stoneware mug"


def test_a_complete_event_needs_nothing_and_is_unchanged() -> None:
    full = order(
        items=[
            {
                "product_id": "mug",
                "quantity": 1,
                "name": "Own",
                "unit_price": "1.00",
                "image_url": "https://cdn.shop.example/own.jpg",
            }
        ]
    )
    assert product_ids(full) == set()
    assert enrich(full, {}) == full


def test_a_view_takes_name_price_and_category() -> None:
    view = parse_event(
        {
            "event_id": "v",
            "type": "product.viewed",
            "occurred_at": AT,
            "contact": {"email": "a@example.org"},
            "product_id": "mug",
        }
    )
    assert isinstance(view, ProductViewed)
    done = enrich(view, {"mug": MUG})
    assert isinstance(done, ProductViewed)
    assert (done.name, done.price, done.category) == ("Stoneware mug", Decimal("12.50"), "Mugs")


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([{"product_id": "nope", "quantity": 1}], "items[0].name"),
        ([{"quantity": 1, "unit_price": "1.00"}], "items[0].name"),
        ([{"product_id": "nope", "name": "x", "quantity": 1}], "items[0].unit_price"),
    ],
)
def test_what_nobody_gives_is_a_clear_error(items: list[dict[str, Any]], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        enrich(order(items=items), {"mug": MUG})
    assert caught.value.field == field
