"""The catalog through the events API, on SQLite and PostgreSQL: products, deletes that stay
deleted, and what orders say is bought together."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from remarket_mailer.cli import app as cli
from remarket_mailer.db import catalog as catalog_db
from remarket_mailer.db.engine import make_engine, make_session_factory
from remarket_mailer.db.migrate import upgrade
from remarket_mailer.db.models import Cart
from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from remarket_mailer.services.unit_of_work import UnitOfWork
from tests.conftest import T0, AppFactory
from tests.helpers import (
    AUTH,
    arrive,
    cart_event,
    consent_event,
    event,
    order_event,
    post,
    profile_event,
    run_due,
)

_n = iter(range(10**6))


def product(product_id: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"prod-{next(_n)}",
        "type": "product.upserted",
        "occurred_at": at.isoformat(),
        "product_id": product_id,
        "title": fields.pop("title", f"Product {product_id}"),
        "price": fields.pop("price", "10.00"),
        "currency": "EUR",
        "url": f"https://shop.example/p/{product_id}",
        **fields,
    }


def line(product_id: str) -> dict[str, Any]:
    return {"product_id": product_id, "name": product_id, "quantity": 1, "unit_price": "10.00"}


def test_products_upsert_in_order_and_deletes_stay_deleted(
    clock: VirtualClock, make_app: AppFactory
) -> None:
    app = make_app()
    client = TestClient(create_api(app))
    arrive(client, clock, product("mug", T0, title="Mug", category="kitchen", tags=["gift"]))
    arrive(client, clock, product("mug", T0 + timedelta(hours=2), title="Mug v2", price="12.00"))
    arrive(client, clock, product("mug", T0 + timedelta(hours=1), title="late, older"))  # ignored
    arrive(client, clock, product("pot", T0, category="kitchen"))
    arrive(
        client,
        clock,
        {
            "event_id": "del-1",
            "type": "product.deleted",
            "occurred_at": (T0 + timedelta(hours=1)).isoformat(),
            "product_id": "pot",
        },
    )
    arrive(client, clock, product("pot", T0 + timedelta(minutes=30)))  # older than the delete
    with app.uow() as session:
        found = catalog_db.products_by_id(session, ["mug", "pot", "nope"])
        size = catalog_db.catalog_size(session)
    assert list(found) == ["mug"]
    assert (found["mug"].title, found["mug"].price) == ("Mug v2", Decimal("12.00"))
    assert found["mug"].category is None  # an upsert is the whole product, not a patch
    assert size == (1, 1)
    # A newer upsert brings a deleted product back (re-listed).
    arrive(client, clock, product("pot", T0 + timedelta(hours=3)))
    with app.uow() as session:
        assert set(catalog_db.products_by_id(session, ["pot"])) == {"pot"}


def test_a_replayed_product_event_is_a_duplicate_and_a_changed_body_conflicts(
    make_app: AppFactory,
) -> None:
    client = TestClient(create_api(make_app()))
    body = product("mug", T0)
    post(client, body)
    assert post(client, body, expect=200)["duplicate"] is True
    response = client.post("/v1/events", json={**body, "title": "other"}, headers=AUTH)
    assert response.status_code == 409


def test_a_bad_product_event_is_a_422_naming_the_field(make_app: AppFactory) -> None:
    client = TestClient(create_api(make_app()))
    response = client.post("/v1/events", json={**product("mug", T0), "price": 9.5}, headers=AUTH)
    assert response.status_code == 422
    assert "price" in response.text


def test_orders_count_best_sellers_and_pairs_once_per_order(
    clock: VirtualClock, make_app: AppFactory
) -> None:
    app = make_app()
    client = TestClient(create_api(app))
    for pid, category in (
        ("mug", "kitchen"),
        ("pot", "kitchen"),
        ("tea", "food"),
        ("cup", "kitchen"),
        ("gone", "kitchen"),
    ):
        arrive(client, clock, product(pid, T0 - timedelta(days=1), category=category))
    arrive(client, clock, product("gone", T0, category="kitchen", available=False))
    baskets = [["mug", "tea"], ["mug", "tea", "gone"], ["mug", "pot"], ["cup"]]
    for n, basket in enumerate(baskets):
        body = order_event(
            T0 + timedelta(minutes=n),
            cart_id=None,
            order_id=f"o-{n}",
            items=[line(p) for p in basket],
        )
        arrive(client, clock, body)
        arrive(client, clock, body, expect=200)  # a replay counts nothing twice
    # The same order again under a new event id (a shop's second webhook): counted once.
    arrive(
        client,
        clock,
        order_event(
            T0 + timedelta(hours=1), cart_id=None, order_id="o-0", items=[line("mug"), line("tea")]
        ),
    )
    with app.uow() as session:
        partners = catalog_db.bought_with(session, ["mug", "tea", "cup"])
        sellers = catalog_db.best_sellers(session, ["kitchen", None], 3)
    assert [(p.product_id, n) for p, n in partners["mug"]] == [("tea", 2), ("pot", 1)]
    # "gone" was bought with tea, but is out of stock: never a partner.
    assert [(p.product_id, n) for p, n in partners["tea"]] == [("mug", 2)]
    assert "cup" not in partners  # bought alone
    assert [p.product_id for p in sellers["kitchen"]] == ["mug", "cup", "pot"]
    assert [p.product_id for p in sellers[None]] == ["mug", "tea", "cup"]


def test_cli_import_feed_then_again_unchanged_and_older_feed_ignored(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    env = {"REMARKET_DATABASE_URL": url}
    uow = UnitOfWork(make_session_factory(make_engine(url)))
    feed = Path(__file__).parent.parent / "fixtures" / "catalog" / "shopify_products.csv"
    stamp = ["--as-of", "2026-12-01T08:00:00+00:00"]
    first = CliRunner().invoke(cli, ["catalog", "import", str(feed), *stamp], env=env)
    assert first.exit_code == 0, first.output
    assert "3 product(s) read (shopify), 3 imported, 0 unchanged, 1 with problems" in first.stdout
    assert "line 6: Title: the product's first row has none" in first.stdout
    again = CliRunner().invoke(cli, ["catalog", "import", str(feed), *stamp], env=env)
    assert "0 imported, 3 unchanged" in again.stdout
    newer = tmp_path / "newer.csv"
    newer.write_text("product_id,title,price\nteapot,Teapot (new glaze),41.00\n")
    CliRunner().invoke(
        cli, ["catalog", "import", str(newer), "--as-of", "2026-12-02T08:00:00+00:00"], env=env
    )
    older = tmp_path / "older.csv"
    older.write_text("product_id,title,price\nteapot,Teapot (last year),30.00\n")
    CliRunner().invoke(
        cli, ["catalog", "import", str(older), "--as-of", "2025-12-01T08:00:00+00:00"], env=env
    )
    with uow() as session:
        found = catalog_db.products_by_id(session, ["stoneware-mug", "teapot", "old-cup"])
    assert (found["teapot"].title, found["teapot"].price) == (
        "Teapot (new glaze)",
        Decimal("41.00"),
    )
    assert found["stoneware-mug"].available and not found["old-cup"].available
    status = CliRunner().invoke(cli, ["catalog", "status"], env=env)
    assert "catalog: 3 product(s), 2 in stock" in status.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import", "{tmp}/missing.csv"], "No such file"),
        (["import", "{tmp}/odd.csv"], "cannot tell the file's layout"),
        (["import", "{tmp}/odd.csv", "--format", "xml"], "--format must be one of"),
        (["import", "{tmp}/odd.csv", "--as-of", "yesterday"], "--as-of"),
        (["import", "{tmp}/odd.csv", "--as-of", "2026-12-01T08:00:00"], "needs an offset"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    (tmp_path / "odd.csv").write_text("sku,colour\nA,red\n")
    argv = [a.format(tmp=tmp_path) for a in args]
    result = CliRunner().invoke(cli, ["catalog", *argv], env={"REMARKET_DATABASE_URL": url})
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_cli_unmigrated_database(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("product_id,title\nmug,Mug\n")
    env = {"REMARKET_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    result = CliRunner().invoke(cli, ["catalog", "import", str(tmp_path / "p.csv")], env=env)
    assert result.exit_code == 2
    assert "remarket db upgrade" in result.stderr


def test_events_that_name_products_by_id_take_the_rest_from_the_catalog(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    provider = MemoryProvider()
    app = make_app(provider=provider)
    client = TestClient(create_api(app))
    arrive(
        client,
        clock,
        product(
            "mug",
            T0 - timedelta(days=1),
            title="Stoneware mug",
            price="12.50",
            image_url="https://cdn.shop.example/mug.jpg",
        ),
    )
    arrive(client, clock, profile_event(T0 - timedelta(minutes=5)))
    arrive(client, clock, consent_event(T0 - timedelta(minutes=5)))
    bare = [{"product_id": "mug", "quantity": 2}]
    arrive(client, clock, cart_event(T0, items=bare, total="25.00"))
    clock.set(T0 + timedelta(hours=1))
    run_due(app)
    (message,) = provider.outbox
    assert "Stoneware mug" in message.html and "cdn.shop.example/mug.jpg" in message.html
    # What the event gives wins over the catalog.
    own = [{"product_id": "mug", "quantity": 1, "name": "Mug (gift box)", "unit_price": "14.00"}]
    arrive(
        client,
        clock,
        cart_event(T0 + timedelta(hours=2), cart_id="cart-2", items=own, total="14.00"),
    )
    with app.uow() as session:
        (cart,) = [c for c in session.scalars(select(Cart)) if c.cart_id == "cart-2"]
    (item,) = cart.items["items"]
    assert (item["name"], item["unit_price"]) == ("Mug (gift box)", "14.00")
    assert item["image_url"] == "https://cdn.shop.example/mug.jpg"


def test_a_product_neither_the_event_nor_the_catalog_describes_is_a_422(
    make_app: AppFactory,
) -> None:
    client = TestClient(create_api(make_app()))
    bare = [{"product_id": "unknown", "quantity": 1}]
    response = client.post("/v1/events", json=cart_event(T0, items=bare), headers=AUTH)
    assert response.status_code == 422, response.text
    assert "items[0].name" in response.text and "'unknown' is not in the catalog" in response.text
    view = {**event("product.viewed", T0), "product_id": "unknown"}
    response = client.post("/v1/events", json=view, headers=AUTH)
    assert response.status_code == 422 and "not in the catalog" in response.text
    # The rejected events left nothing: the same ids are free once the catalog knows them.
    post(client, product("unknown", T0 - timedelta(days=1)))
    post(client, view)


def test_recommendations_for_a_batch_from_what_others_bought(make_app: AppFactory) -> None:
    from remarket_mailer.services.recommendations import Basis, for_batch

    app = make_app()
    client = TestClient(create_api(app))
    for pid, category in (
        ("mug", "kitchen"),
        ("pot", "kitchen"),
        ("tea", "food"),
        ("cup", "kitchen"),
        ("bag", None),
    ):
        post(client, product(pid, T0 - timedelta(days=1), category=category))
    for n, basket in enumerate([["mug", "tea"], ["mug", "tea"], ["mug", "pot"], ["cup", "bag"]]):
        post(
            client,
            order_event(
                T0 + timedelta(minutes=n),
                cart_id=None,
                order_id=f"o-{n}",
                items=[line(p) for p in basket],
            ),
        )
    with app.uow() as session:
        found = for_batch(
            session,
            {
                1: Basis(("mug",), frozenset({"mug"})),
                2: Basis(("mug",), frozenset({"mug", "tea"})),
                3: Basis(("nothing-known",)),
            },
            limit=3,
        )
    assert [p.product_id for p in found[1]] == ["tea", "pot", "cup"]  # cup: kitchen best seller
    assert [p.product_id for p in found[2]] == ["pot", "cup", "bag"]
    assert [p.product_id for p in found[3]] == ["mug", "tea", "bag"]  # best sellers overall
