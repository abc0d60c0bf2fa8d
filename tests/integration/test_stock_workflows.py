"""Simulation tests of the stock workflows through the real engine (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from remarket_mailer.bootstrap import App
from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from tests.conftest import T0, AppFactory
from tests.helpers import (
    arrive,
    cart_event,
    consent_event,
    deliveries,
    enrollments,
    event,
    order_event,
    post,
    profile_event,
    run_due,
)

SHOP = "https://shop.example.com"


def product(pid: str, name: str) -> dict[str, str]:
    return {"product_id": pid, "name": name, "url": f"{SHOP}/p/{pid}", "price": "19.00"}


@pytest.fixture
def provider() -> MemoryProvider:
    return MemoryProvider()


@pytest.fixture
def app(make_app: AppFactory, provider: MemoryProvider) -> App:
    return make_app(provider=provider)


@pytest.fixture
def client(app: App) -> TestClient:
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(days=1)))
    post(client, consent_event(T0 - timedelta(days=1)))
    return client


def advance(
    app: App, clock: VirtualClock, to: datetime, step: timedelta = timedelta(hours=1)
) -> None:
    """Move the clock hour by hour (as the scheduler would) and send what is due."""
    while clock.now() < to:
        clock.set(min(clock.now() + step, to))
        run_due(app)


def sent(provider: MemoryProvider, workflow: str) -> list[str]:
    return [m.tags["step"] for m in provider.outbox if m.tags["workflow"] == workflow]


def test_browse_abandonment_once_per_14_days_and_stopped_by_a_cart(
    app: App, client: TestClient, clock: VirtualClock, provider: MemoryProvider
) -> None:
    view = event("product.viewed", T0, product_id="TEA-7", name="Earl Grey", url=f"{SHOP}/p/tea7")
    assert arrive(client, clock, view)["enrollments_started"] == ["browse_abandonment"]
    again = event("product.viewed", T0 + timedelta(hours=2), product_id="MUG", name="Mug")
    assert arrive(client, clock, again)["enrollments_started"] == []
    advance(app, clock, T0 + timedelta(days=2))
    assert sent(provider, "browse_abandonment") == ["reminder"]
    message = next(m for m in provider.outbox if m.tags["workflow"] == "browse_abandonment")
    assert "Earl Grey" in message.subject and "Earl Grey" in message.text
    # Within 14 days of the last one: no new enrollment.
    later = event("product.viewed", T0 + timedelta(days=5), product_id="X", name="Kettle")
    assert arrive(client, clock, later)["enrollments_started"] == []
    # After 14 days it may start again, and a cart stops it.
    fresh = event("product.viewed", T0 + timedelta(days=15), product_id="X", name="Kettle")
    assert arrive(client, clock, fresh)["enrollments_started"] == ["browse_abandonment"]
    arrive(client, clock, cart_event(T0 + timedelta(days=15, hours=3), cart_id="c-15"))
    advance(app, clock, T0 + timedelta(days=17))
    assert sent(provider, "browse_abandonment") == ["reminder"]


def test_browse_abandonment_shows_what_others_bought_with_the_viewed_product(
    app: App, client: TestClient, clock: VirtualClock, provider: MemoryProvider
) -> None:
    """Under the viewed product, the reminder shows what other customers bought with it,
    from the shop's own orders; without such history the section is left out (above)."""
    for pid, title in (("TEA", "Earl Grey tea"), ("HONEY", "Heather honey"), ("POT", "Teapot")):
        body = {"event_id": f"p-{pid}", "type": "product.upserted",
                "occurred_at": (T0 - timedelta(days=30)).isoformat(), "product_id": pid,
                "title": title, "price": "9.00", "category": "food",
                "url": f"{SHOP}/p/{pid.lower()}"}  # fmt: skip
        post(client, body)
    for n, basket in enumerate([["TEA", "HONEY"], ["TEA", "HONEY"], ["TEA", "POT"]]):
        lines = [{"product_id": p, "quantity": 1} for p in basket]
        post(client, order_event(T0 - timedelta(days=20, minutes=n), email=f"o{n}@example.org",
                                 cart_id=None, order_id=f"old-{n}", items=lines))  # fmt: skip
    view = event("product.viewed", T0, product_id="TEA")
    assert arrive(client, clock, view)["enrollments_started"] == ["browse_abandonment"]
    advance(app, clock, T0 + timedelta(days=2))
    message = next(m for m in provider.outbox if m.tags["workflow"] == "browse_abandonment")
    assert "Earl Grey tea" in message.subject
    heading = "Wie dit mooi vond, kocht ook"  # the contact reads Dutch
    assert heading in message.text and heading in message.html
    related = message.text.split(heading, 1)[1]
    assert related.index("Heather honey") < related.index("Teapot")
    assert "Earl Grey" not in related


def test_post_purchase_recommends_only_what_was_not_bought(
    app: App, client: TestClient, clock: VirtualClock, provider: MemoryProvider
) -> None:
    order = order_event(
        T0,
        cart_id=None,
        items=[{"product_id": "MUG", "name": "Mug", "quantity": 1, "unit_price": "12.50"}],
        recommendations=[product("MUG", "Mug"), product("SAUCER", "Saucer"), product("TEA", "Tea")],
    )
    assert "post_purchase_cross_sell" in post(client, order)["enrollments_started"]
    advance(app, clock, T0 + timedelta(days=11))
    assert sent(provider, "post_purchase_cross_sell") == ["cross_sell", "nudge"]
    first, nudge = (m for m in provider.outbox if m.tags["workflow"] == "post_purchase_cross_sell")
    assert "Saucer" in first.text and "Tea" in first.text
    assert "- Mug" not in first.text
    code = next(d for d in deliveries(app) if d.step_id == "nudge").discount_code
    assert code and code.startswith("THANKS-") and code in nudge.text


def test_post_purchase_without_recommendations_skips(
    app: App, client: TestClient, clock: VirtualClock, provider: MemoryProvider
) -> None:
    post(client, order_event(T0, cart_id=None))
    advance(app, clock, T0 + timedelta(days=11), step=timedelta(hours=6))
    reasons = {d.reason for d in deliveries(app) if d.workflow_id == "post_purchase_cross_sell"}
    assert reasons == {"condition_false"}


def test_post_purchase_from_a_shopify_shaped_order_recommends_what_others_bought(
    app: App, client: TestClient, clock: VirtualClock, provider: MemoryProvider
) -> None:
    """Shopify and WooCommerce orders carry no recommendations: the cross-sell shows what
    other customers bought with the same items, from the catalog, never the item bought."""
    for pid, title, category in (
        ("MUG", "Stoneware mug", "kitchen"),
        ("SAUCER", "Saucer", "kitchen"),
        ("TEA", "Earl Grey tea", "food"),
        ("GONE", "Sold-out teapot", "kitchen"),
    ):
        body = {"event_id": f"p-{pid}", "type": "product.upserted",
                "occurred_at": (T0 - timedelta(days=30)).isoformat(), "product_id": pid,
                "title": title, "price": "9.00", "category": category,
                "url": f"{SHOP}/p/{pid.lower()}", "available": pid != "GONE"}  # fmt: skip
        post(client, body)
    mug = {"product_id": "MUG", "name": "Stoneware mug", "quantity": 1, "unit_price": "12.50"}
    others = [["MUG", "TEA"], ["MUG", "TEA"], ["MUG", "GONE"], ["SAUCER"]]
    for n, basket in enumerate(others):
        lines = [{"product_id": p, "quantity": 1} for p in basket]
        post(client, order_event(T0 - timedelta(days=20, minutes=n), email=f"o{n}@example.org",
                                 cart_id=None, order_id=f"old-{n}", items=lines))  # fmt: skip
    order = order_event(T0, cart_id=None, order_id="ann-1", items=[mug])
    assert "recommendations" not in order
    assert "post_purchase_cross_sell" in post(client, order)["enrollments_started"]
    advance(app, clock, T0 + timedelta(days=4))
    assert sent(provider, "post_purchase_cross_sell") == ["cross_sell"]
    first = next(m for m in provider.outbox if m.tags["workflow"] == "post_purchase_cross_sell")
    # Bought with a mug by two others first; then the kitchen's best seller; never the mug,
    # never the sold-out teapot.
    assert first.text.index("Earl Grey tea") < first.text.index("Saucer")
    assert "- Stoneware mug" not in first.text and "Sold-out teapot" not in first.text


def test_recommendations_are_read_once_per_send_batch_not_per_email(
    app: App, client: TestClient, clock: VirtualClock, provider: MemoryProvider
) -> None:
    from sqlalchemy import event as sa_event

    mug = {"product_id": "MUG", "name": "Stoneware mug", "quantity": 1, "unit_price": "12.50"}
    people = [f"buyer{n}@example.org" for n in range(6)]
    for n, who in enumerate(people):
        post(client, consent_event(T0 - timedelta(days=1), email=who))
        post(client, order_event(T0, email=who, cart_id=None, order_id=f"b-{n}", items=[mug],
                                 recommendations=[product("TEA", "Tea")]))  # fmt: skip
    statements: list[str] = []
    sa_event.listen(app.engine, "before_cursor_execute",
                    lambda *args: statements.append(args[2]))  # fmt: skip
    advance(app, clock, T0 + timedelta(days=4))
    assert sent(provider, "post_purchase_cross_sell").count("cross_sell") == len(people)
    pair_reads = [s for s in statements if "product_pairs" in s and "SELECT" in s.upper()]
    assert 1 <= len(pair_reads) <= 2  # conditions in the batch's transaction, templates after


def test_renewal_reminders_at_10_local_and_stopped_by_renewal(
    app: App, client: TestClient, clock: VirtualClock, provider: MemoryProvider
) -> None:
    renews = datetime(2026, 12, 15, 6, 0, tzinfo=UTC)
    sub = event(
        "subscription.upserted",
        T0,
        subscription_id="sub-1",
        plan="Tea club",
        status="active",
        renews_at=renews.isoformat(),
        price="9.00",
        currency="EUR",
    )
    assert post(client, sub)["enrollments_started"] == ["renewal_reminder"]
    rows = [d for d in deliveries(app) if d.workflow_id == "renewal_reminder"]
    amsterdam = ZoneInfo("Europe/Amsterdam")
    local = [d.due_at.astimezone(amsterdam) for d in rows]
    assert [(t.date().isoformat(), t.hour) for t in local] == [
        ("2026-11-15", 10),
        ("2026-12-08", 10),
        ("2026-12-14", 10),
    ]
    advance(app, clock, datetime(2026, 12, 9, tzinfo=UTC), step=timedelta(hours=12))
    assert sent(provider, "renewal_reminder") == ["days_30", "days_7"]
    assert "Tea club" in provider.outbox[0].subject
    renewed = event(
        "subscription.renewed", datetime(2026, 12, 10, tzinfo=UTC), subscription_id="sub-1"
    )
    clock.set(datetime(2026, 12, 10, tzinfo=UTC))
    post(client, renewed)
    advance(app, clock, datetime(2026, 12, 16, tzinfo=UTC), step=timedelta(hours=12))
    assert sent(provider, "renewal_reminder") == ["days_30", "days_7"]
    statuses = {e.workflow_id: e.status for e in enrollments(app)}
    assert statuses["renewal_reminder"] == "exited"


def test_win_back_after_90_days_restarts_with_each_order(
    app: App, client: TestClient, clock: VirtualClock, provider: MemoryProvider
) -> None:
    arrive(client, clock, order_event(T0, cart_id=None))
    arrive(client, clock, order_event(T0 + timedelta(days=30), cart_id=None))
    advance(app, clock, T0 + timedelta(days=100), step=timedelta(hours=12))
    assert sent(provider, "win_back") == []  # only 70 days since the latest order
    advance(app, clock, T0 + timedelta(days=136), step=timedelta(hours=12))
    assert sent(provider, "win_back") == ["miss_you", "last_offer"]
    codes = [
        d.discount_code for d in deliveries(app) if d.workflow_id == "win_back" and d.discount_code
    ]
    assert len(codes) == 2 and all(c.startswith("BACK-") for c in codes)
    exited = [e for e in enrollments(app) if e.workflow_id == "win_back" and e.status == "exited"]
    assert len(exited) == 1


def test_renewal_exit_matches_its_own_subscription_only(
    clock: VirtualClock, app: App, client: TestClient
) -> None:
    # '_' and '%' are LIKE wildcards: the exit's "key before '@'" match must treat them as text.
    renews = datetime(2026, 12, 15, 6, 0, tzinfo=UTC)
    for sub_id in ("sub_1", "subX1", "sub%"):
        started = arrive(
            client,
            clock,
            event(
                "subscription.upserted",
                T0,
                subscription_id=sub_id,
                plan="Tea club",
                status="active",
                renews_at=renews.isoformat(),
                price="9.00",
                currency="EUR",
            ),
        )
        assert started["enrollments_started"] == ["renewal_reminder"]
    for sub_id in ("sub_1", "sub%"):
        renewed = event("subscription.renewed", T0 + timedelta(days=1), subscription_id=sub_id)
        assert arrive(client, clock, renewed)["enrollments_exited"] == 1
    statuses = {
        e.key.partition("@")[0]: e.status
        for e in enrollments(app)
        if e.workflow_id == "renewal_reminder"
    }
    assert statuses == {"sub_1": "exited", "subX1": "active", "sub%": "exited"}
