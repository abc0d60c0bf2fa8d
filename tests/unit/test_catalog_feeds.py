"""Product feeds as the shops export them: Shopify's product CSV (its documented columns,
variants and image rows), a Merchant Center feed, our own CSV and JSON lines."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from remarket_mailer.errors import ValidationError
from remarket_mailer.services.catalog import read_feed, to_events

FIXTURES = Path(__file__).parent.parent / "fixtures" / "catalog"
AS_OF = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_shopify_export_groups_variant_and_image_rows_into_products() -> None:
    feed = read_feed(FIXTURES / "shopify_products.csv")
    assert feed.layout == "shopify"
    events, problems = to_events(feed, AS_OF)
    by_id = {e.product_id: e for _, e, _ in events}
    assert set(by_id) == {"stoneware-mug", "teapot", "old-cup"}
    mug = by_id["stoneware-mug"]
    assert (mug.title, mug.price, mug.compare_at_price) == (
        "Stoneware mug",
        Decimal("12.50"),
        Decimal("15.00"),
    )
    assert mug.category == "Mugs" and mug.tags == ["gift", "kitchen"]
    assert str(mug.image_url) == "https://cdn.shop.example/mug-sand.jpg"
    # Sand is sold out, Ink has 7: the product is available, each variant says its own.
    assert mug.available and [(v.sku, v.available, v.inventory) for v in mug.variants] == [
        ("MUG-SAND", False, 0),
        ("MUG-INK", True, 7),
    ]
    assert by_id["teapot"].available  # inventory not tracked: always in stock
    assert not by_id["old-cup"].available  # archived
    assert [(p.line, p.message) for p in problems] == [
        (6, "Title: the product's first row has none")
    ]
    assert all(e.occurred_at == AS_OF for _, e, _ in events)


def test_merchant_center_feed_sale_price_availability_and_category() -> None:
    feed = read_feed(FIXTURES / "google_feed.tsv")
    assert feed.layout == "google"
    events, problems = to_events(feed, AS_OF)
    mug, pot = (e for _, e, _ in events)
    assert (mug.price, mug.compare_at_price, mug.currency) == (
        Decimal("12.50"),
        Decimal("15.00"),
        "USD",
    )
    assert mug.category == "Mugs" and mug.available
    assert pot.price == Decimal("39.00") and pot.compare_at_price is None and not pot.available
    assert [(p.line, p.message) for p in problems] == [
        (4, "price: 'free' is not an amount like \"15.00 USD\"")
    ]


def test_json_lines_with_synonyms_and_problems_by_line() -> None:
    feed = read_feed(FIXTURES / "products.jsonl")
    events, problems = to_events(feed, AS_OF)
    assert [(e.product_id, e.title, e.available) for _, e, _ in events] == [
        ("mug", "Mug", True),
        ("pot", "Teapot", False),
    ]
    assert [p.line for p in problems] == [4, 5]
    assert problems[0].message.startswith("not JSON")
    assert problems[1].message.startswith("price:")


def test_the_same_product_gives_the_same_event_id_and_a_change_another(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text('product_id,title,price,tags\nmug,Mug,12.50,"a, b"\n')
    first = to_events(read_feed(path), AS_OF)[0][0][1]
    again = to_events(read_feed(path), AS_OF)[0][0][1]
    path.write_text('product_id,title,price,tags\nmug,Mug,13.00,"a, b"\n')
    changed = to_events(read_feed(path), AS_OF)[0][0][1]
    assert first.event_id == again.event_id != changed.event_id
    assert first.tags == ["a", "b"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("sku,colour\nA,red\n", "cannot tell the file's layout"),
    ],
)
def test_files_that_are_no_feed_say_why(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "f.csv"
    path.write_text(content)
    with pytest.raises(ValidationError, match=message):
        read_feed(path)


def test_missing_and_binary_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="No such file"):
        read_feed(tmp_path / "nope.csv")
    (tmp_path / "b.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ValidationError, match="not UTF-8"):
        read_feed(tmp_path / "b.csv")
