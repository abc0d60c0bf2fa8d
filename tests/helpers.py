"""Test helpers: events, posting through the real API, running the sweeper synchronously."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from remarket_mailer.bootstrap import App
from remarket_mailer.db.models import Contact, Delivery, Enrollment
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.services.dispatch import DispatchReport, dispatch_due

_ids = itertools.count(1)
AUTH = {"Authorization": "Bearer test-key"}


def event(kind: str, at: datetime, email: str = "ann@example.org", **fields: Any) -> dict[str, Any]:
    return {
        "event_id": fields.pop("event_id", f"evt-{next(_ids)}"),
        "type": kind,
        "occurred_at": at.isoformat(),
        "contact": fields.pop("contact", {"email": email}),
        **fields,
    }


def cart_event(
    at: datetime, cart_id: str = "cart-1", total: str = "74.50", **fields: Any
) -> dict[str, Any]:
    return event(
        "cart.updated",
        at,
        cart_id=cart_id,
        currency="EUR",
        total=total,
        checkout_url=f"https://shop.example/checkout/{cart_id}",
        items=fields.pop(
            "items", [{"sku": "MUG", "name": "Stoneware mug", "quantity": 2, "unit_price": "12.50"}]
        ),
        **fields,
    )


def consent_event(
    at: datetime, email: str = "ann@example.org", status: str = "granted"
) -> dict[str, Any]:
    return event(
        "consent.changed", at, email=email, topic="marketing", status=status, source="test"
    )


def profile_event(at: datetime, email: str = "ann@example.org", **fields: Any) -> dict[str, Any]:
    values = {"first_name": "Ann", "locale": "nl", "timezone": "Europe/Amsterdam"}
    values.update(fields)
    return event("contact.upserted", at, email=email, **values)


def order_event(
    at: datetime, cart_id: str | None = "cart-1", email: str = "ann@example.org", **fields: Any
) -> dict[str, Any]:
    return event(
        "order.placed",
        at,
        email=email,
        order_id=fields.pop("order_id", f"order-{next(_ids)}"),
        cart_id=cart_id,
        currency="EUR",
        total=fields.pop("total", "74.50"),
        **fields,
    )


def arrive(
    client: TestClient, clock: VirtualClock, body: dict[str, Any], expect: int | None = 202
) -> dict[str, Any]:
    """Post ``body`` the way events arrive: never before they happened. The virtual clock
    moves on to the event's ``occurred_at`` when it is behind (ingest refuses events stamped
    more than 5 minutes ahead of its clock)."""
    moment = datetime.fromisoformat(body["occurred_at"])
    if moment > clock.now():
        clock.set(moment)
    return post(client, body, expect)


def post(client: TestClient, body: dict[str, Any], expect: int | None = 202) -> dict[str, Any]:
    response = client.post("/v1/events", json=body, headers=AUTH)
    if expect is not None:
        assert response.status_code == expect, response.text
    result: dict[str, Any] = response.json()
    return result


def run_due(app: App) -> DispatchReport:
    """The sweeper, with the worker called in-line instead of through a broker."""
    return dispatch_due(
        app.uow,
        app.clock,
        app.delivery.send,
        batch_size=app.settings.batch_size,
        lease=timedelta(seconds=app.settings.lease_seconds),
        pause_keys=app.delivery.pause_keys_by_workflow(),
    )


def deliveries(app: App) -> list[Delivery]:
    with app.uow() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def enrollments(app: App) -> list[Enrollment]:
    with app.uow() as session:
        return list(session.scalars(select(Enrollment).order_by(Enrollment.id)))


def contacts(app: App) -> list[Contact]:
    with app.uow() as session:
        return list(session.scalars(select(Contact).order_by(Contact.id)))
