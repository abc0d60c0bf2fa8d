"""Back in stock and price drops end to end, on SQLite and PostgreSQL: views and carts are
remembered, a catalog change becomes one email per interested person, and replays, re-runs
and a job that died half-way send nothing more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

from remarket_mailer.bootstrap import App
from remarket_mailer.cli import app as cli
from remarket_mailer.db import catalog as catalog_db
from remarket_mailer.db import interests as interests_db
from remarket_mailer.db.engine import make_engine, make_session_factory
from remarket_mailer.db.migrate import upgrade
from remarket_mailer.db.models import ProductChange, ProductInterest
from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.domain.clock import SystemClock, VirtualClock
from remarket_mailer.entrypoints.api import create_api
from remarket_mailer.schemas import parse_event
from remarket_mailer.services.ingest import ingest_event
from remarket_mailer.services.product_alerts import AlertReport, derive_product_alerts
from remarket_mailer.services.unit_of_work import UnitOfWork
from remarket_mailer.workflows.loader import load_workflows
from tests.conftest import ROOT, T0, AppFactory
from tests.helpers import (
    arrive,
    cart_event,
    consent_event,
    enrollments,
    event,
    post,
    profile_event,
    run_due,
)
from tests.integration.test_catalog import product

PEOPLE = ("ann@example.org", "bob@example.org", "cy@example.org", "dee@example.org")


def _people(client: TestClient, clock: VirtualClock, at: datetime) -> None:
    for email in PEOPLE:
        arrive(client, clock, profile_event(at, email=email, first_name=email[:3].title()))
        arrive(client, clock, consent_event(at, email=email))


def _view(product_id: str, at: datetime, email: str, price: str = "100.00") -> dict[str, Any]:
    name = product_id.title()
    return event("product.viewed", at, email=email, product_id=product_id, name=name,
                 price=price, currency="EUR")  # fmt: skip


def _alerts(app: App) -> AlertReport:
    return derive_product_alerts(app.uow, app.workflows, app.clock)


def _sent(app: App, provider: MemoryProvider, workflow_id: str) -> list[tuple[str, str]]:
    run_due(app)
    return sorted(
        (m.to_addr.rpartition("<")[2].rstrip(">"), m.subject)
        for m in provider.outbox
        if m.tags.get("workflow") == workflow_id
    )


def test_a_restock_sends_one_email_per_interested_contact_and_replays_send_none(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    provider = MemoryProvider()
    app = make_app(provider=provider)
    client = TestClient(create_api(app))
    start = T0 - timedelta(days=40)
    clock.set(start)
    _people(client, clock, start)
    arrive(client, clock, _view("kettle", start + timedelta(hours=1), "dee@example.org"))
    arrive(
        client, clock, product("kettle", T0 - timedelta(days=1), title="Kettle", available=False)
    )
    arrive(client, clock, _view("kettle", T0, "ann@example.org"))
    # A cart under the abandoned-cart filter's minimum: no reminder of its own to cap this one.
    kettle = [{"product_id": "kettle", "name": "Kettle", "quantity": 1, "unit_price": "15.00"}]
    arrive(client, clock, cart_event(T0, email="bob@example.org", items=kettle, total="15.00"))
    arrive(client, clock, _view("mug", T0, "cy@example.org"))  # another product
    assert _alerts(app).back_in_stock == 0  # nothing changed yet

    restock = product("kettle", T0 + timedelta(hours=1), title="Kettle", available=True)
    arrive(client, clock, restock)
    report = _alerts(app)
    assert (report.back_in_stock, report.enrollments) == (2, 2)  # dee's view is 40 days old
    clock.set(T0 + timedelta(hours=2))
    sent = _sent(app, provider, "back_in_stock")
    assert sent == [
        ("ann@example.org", "Ann, Kettle is weer op voorraad"),
        ("bob@example.org", "Bob, Kettle is weer op voorraad"),
    ]

    # The same webhook again, a newer one that changes nothing about stock, the job again.
    post(client, restock, expect=200)
    arrive(client, clock, {**product("kettle", T0 + timedelta(hours=3)), "inventory": 4})
    assert _alerts(app) == AlertReport(products=1)
    # The job died after its events went in and before it marked them: they come out again,
    # as duplicates.
    with app.uow() as session:
        session.execute(update(ProductInterest).values(restock_notified_at=None))
        interests_db.note_changes(session, ["kettle"], clock.now())
    assert _alerts(app).duplicates == 2
    clock.set(T0 + timedelta(days=2))
    later = _sent(app, provider, "back_in_stock")
    assert [m for m in later if "weer op voorraad" in m[1]] == sent  # still one each
    # The workflow's second step, once each: enrollments were not started twice either.
    assert [m for m in later if m not in sent] == [
        ("ann@example.org", "Ann, Kettle is nog op voorraad"),
        ("bob@example.org", "Bob, Kettle is nog op voorraad"),
    ]
    with app.uow() as session:
        assert list(session.scalars(select(ProductChange))) == []


def test_sold_out_after_the_view_and_back_counts_deleted_and_bought_products_do_not(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    app = make_app()
    client = TestClient(create_api(app))
    clock.set(T0 - timedelta(days=1))
    _people(client, clock, T0 - timedelta(days=1))
    arrive(client, clock, product("kettle", T0 - timedelta(hours=20), available=True))
    arrive(client, clock, product("lamp", T0 - timedelta(hours=20), available=False))
    for email in PEOPLE[:3]:
        arrive(client, clock, _view("kettle", T0 - timedelta(hours=10), email))
    arrive(client, clock, _view("lamp", T0 - timedelta(hours=10), "dee@example.org"))
    bought = [{"product_id": "kettle", "name": "Kettle", "quantity": 1, "unit_price": "100.00"}]
    order = event("order.placed", T0 - timedelta(hours=5), email="cy@example.org",
                  order_id="o-1", currency="EUR", total="100.00", items=bought)  # fmt: skip
    arrive(client, clock, order)
    arrive(client, clock, product("kettle", T0 - timedelta(hours=4), available=False))
    arrive(client, clock, product("kettle", T0, available=True))  # sold out after, and back
    arrive(client, clock, {"event_id": "del-lamp", "type": "product.deleted",
                           "occurred_at": T0.isoformat(), "product_id": "lamp"})  # fmt: skip
    arrive(client, clock, product("lamp", T0 - timedelta(minutes=1), available=True))  # older
    report = _alerts(app)
    assert report.back_in_stock == 2  # ann and bob; cy bought it, the lamp is deleted
    with app.uow() as session:
        waiting = {(i.contact_id, i.product_id) for i in session.scalars(select(ProductInterest))}
    assert len(waiting) == 3  # cy's interest in the kettle ended with the order


def test_a_price_drop_of_ten_percent_sends_once_a_smaller_one_never(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    provider = MemoryProvider()
    app = make_app(provider=provider)
    client = TestClient(create_api(app))
    clock.set(T0 - timedelta(days=1))
    _people(client, clock, T0 - timedelta(days=1))
    arrive(client, clock, product("mug", T0 - timedelta(hours=20), title="Mug", price="20.00"))
    arrive(client, clock, event("product.viewed", T0 - timedelta(hours=10), product_id="mug"))
    arrive(client, clock, product("mug", T0, title="Mug", price="19.00"))  # 5 %
    assert _alerts(app).price_dropped == 0
    arrive(client, clock, product("mug", T0 + timedelta(minutes=1), title="Mug", price="17.50"))
    assert _alerts(app).price_dropped == 1
    arrive(client, clock, product("mug", T0 + timedelta(minutes=2), title="Mug", price="17.00"))
    assert _alerts(app).price_dropped == 0  # not 10 % below what ann was told
    clock.set(T0 + timedelta(hours=1))
    assert _sent(app, provider, "price_drop") == [("ann@example.org", "Ann, Mug is nu goedkoper")]
    (message,) = [m for m in provider.outbox if m.tags.get("workflow") == "price_drop"]
    assert "Was €\xa020,00, nu €\xa017,50." in message.text


def test_cli_a_feed_import_that_restocks_a_product_then_alerts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    env = {"REMARKET_DATABASE_URL": url, "REMARKET_WORKFLOWS_DIR": str(ROOT / "workflows")}
    uow = UnitOfWork(make_session_factory(make_engine(url)))
    now = datetime.now(UTC).replace(microsecond=0)
    workflows = load_workflows(ROOT / "workflows")
    for body in (
        product("tea", now - timedelta(hours=2), title="Tea", available=False),
        consent_event(now - timedelta(hours=2)),
        _view("tea", now - timedelta(hours=1), "ann@example.org", price="9.00"),
    ):
        ingest_event(uow, workflows, SystemClock(), parse_event(body), body)
    feed = tmp_path / "feed.csv"
    feed.write_text("product_id,title,price,currency,available\ntea,Tea,9.00,EUR,yes\n")
    stamp = ["--as-of", now.isoformat()]
    imported = CliRunner().invoke(cli, ["catalog", "import", str(feed), *stamp], env=env)
    assert "1 imported" in imported.stdout, imported.output
    first = CliRunner().invoke(cli, ["catalog", "alerts"], env=env)
    assert first.exit_code == 0, first.output
    assert "1 changed product(s): 1 back-in-stock and 0 price-drop alert(s), 1 enrollment(s)" in (
        first.stdout
    )
    again = CliRunner().invoke(cli, ["catalog", "alerts"], env=env)
    assert "0 changed product(s): 0 back-in-stock" in again.stdout
    broken = CliRunner().invoke(
        cli, ["catalog", "alerts"], env={**env, "REMARKET_WORKFLOWS_DIR": str(tmp_path / "no")}
    )
    assert broken.exit_code == 2 and "does not exist" in broken.stderr


def test_what_a_person_looked_at_is_in_their_export_and_gone_with_their_erasure(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    from remarket_mailer.services.gdpr import erase_contact, export_contact

    app = make_app()
    client = TestClient(create_api(app))
    arrive(client, clock, product("tea", T0 - timedelta(hours=1), title="Tea", available=False))
    arrive(client, clock, _view("tea", T0, "ann@example.org", price="9.00"))
    exported = export_contact(app.uow, "ann@example.org")
    assert exported is not None
    (seen,) = exported["product_interests"]
    assert (seen["product_id"], seen["price"], seen["available"]) == ("tea", "9.00", False)
    assert erase_contact(app.uow, clock, "ann@example.org").deleted["product_interests"] == 1
    arrive(client, clock, product("tea", T0 + timedelta(hours=1), title="Tea", available=True))
    assert _alerts(app).back_in_stock == 0


def test_a_shopify_product_update_that_restocks_alerts_who_saw_it_sold_out(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    import json

    from tests.integration.test_integrations_api import FIXTURES, SECRET, shopify_headers

    app = make_app(shopify_webhook_secrets=[SECRET], shop_url="https://shop.example")
    client = TestClient(create_api(app))
    _people(client, clock, T0 - timedelta(days=1))
    shirt = json.loads((FIXTURES / "shopify" / "products_create.json").read_text())

    def webhook(at: datetime, stock: int) -> None:
        for variant in shirt["variants"]:
            variant["inventory_quantity"] = stock
        shirt["updated_at"] = at.isoformat()
        body = json.dumps(shirt).encode()
        clock.set(max(clock.now(), at))
        response = client.post(
            "/v1/integrations/shopify",
            content=body,
            headers=shopify_headers(body, "products/update"),
        )
        assert response.status_code == 200, response.text

    webhook(T0 - timedelta(hours=20), stock=0)
    arrive(client, clock, event("product.viewed", T0 - timedelta(hours=10),
                                product_id=str(shirt["id"])))  # fmt: skip
    webhook(T0 - timedelta(hours=5), stock=0)
    assert _alerts(app).back_in_stock == 0
    webhook(T0, stock=5)
    assert _alerts(app).back_in_stock == 1
    webhook(T0 + timedelta(hours=1), stock=4)  # still in stock: no news
    assert _alerts(app).back_in_stock == 0


def test_what_people_viewed_together_is_recommended_after_what_they_bought_together(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    from remarket_mailer.services.recommendations import Basis, for_batch

    app = make_app()
    client = TestClient(create_api(app))
    for product_id in ("kettle", "filter", "scale", "mug"):
        arrive(client, clock, product(product_id, T0 - timedelta(days=1)))
    at = T0
    for email, looked in (
        ("ann@example.org", ["kettle", "filter", "scale"]),
        ("bob@example.org", ["kettle", "filter"]),
        ("bob@example.org", ["kettle", "filter"]),  # again: bob counts once
    ):
        for product_id in looked:
            at += timedelta(minutes=1)
            arrive(client, clock, _view(product_id, at, email))
    with app.uow() as session:
        picks = for_batch(session, {"k": Basis(("kettle",), frozenset({"kettle"}))}, 3)
        counts = catalog_db.viewed_with(session, ["kettle"])
    assert [(p.product_id, n) for p, n in counts["kettle"]] == [("filter", 2), ("scale", 1)]
    assert [p.product_id for p in picks["k"]] == ["filter", "scale", "mug"]


def test_the_scheduler_runs_the_alert_job(make_app: AppFactory, clock: VirtualClock) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    from remarket_mailer.entrypoints.scheduler import add_jobs

    app = make_app()
    client = TestClient(create_api(app))
    _people(client, clock, T0 - timedelta(hours=1))
    arrive(client, clock, product("tea", T0 - timedelta(hours=1), title="Tea", available=False))
    arrive(client, clock, _view("tea", T0, "ann@example.org"))
    arrive(client, clock, product("tea", T0 + timedelta(minutes=1), title="Tea"))
    scheduler = BackgroundScheduler(timezone="UTC")
    add_jobs(scheduler, app)
    (job,) = [j for j in scheduler.get_jobs() if j.id == "product_alerts"]
    job.func(*job.args)  # what the scheduler calls every 30 s
    with app.uow() as session:
        assert list(session.scalars(select(ProductChange))) == []
    started = [e for e in enrollments(app) if e.workflow_id == "back_in_stock"]
    assert len(started) == 1
