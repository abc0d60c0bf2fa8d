"""Trigger filters and step conditions see the same context: a name that works in one works in
the other (``contact.is_customer`` used to fail a step condition with ``condition_error``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from tests.conftest import ROOT, T0, AppFactory
from tests.helpers import (
    cart_event,
    consent_event,
    deliveries,
    order_event,
    post,
    profile_event,
    run_due,
)

FILTER = 'contact.last_name != "Blocked" and contact.is_customer'


def _workflows(directory: Path, filter_: str | None, condition: str | None) -> Path:
    """The stock abandoned cart, with another trigger filter and/or a condition on its first
    reminder."""
    source = (ROOT / "workflows" / "abandoned_cart.yaml").read_text()
    if filter_ is not None:
        source = source.replace("filter: cart.total >= 20", f"filter: '{filter_}'")
    if condition is not None:
        source = source.replace(
            "    template: abandoned_cart/reminder_1\n",
            f"    template: abandoned_cart/reminder_1\n    condition: {condition}\n",
        )
    assert filter_ is None or filter_ in source
    assert condition is None or condition in source
    (directory / "abandoned_cart.yaml").write_text(source)
    return directory


def _people(client: TestClient) -> None:
    for email, last_name in [("ann@example.org", "Jansen"), ("bob@example.org", "Smit")]:
        post(client, profile_event(T0 - timedelta(days=2), email=email, last_name=last_name))
        post(client, consent_event(T0 - timedelta(days=2), email=email))
    # Ann bought something last week; Bob never did.
    post(client, order_event(T0 - timedelta(days=1), cart_id=None, email="ann@example.org"))


def test_is_customer_in_a_step_condition(
    make_app: AppFactory, tmp_path: Path, clock: VirtualClock
) -> None:
    provider = MemoryProvider()
    workflows = _workflows(tmp_path, None, "contact.is_customer")
    app = make_app(provider=provider, workflows_dir=workflows)
    client = TestClient(create_api(app))
    _people(client)
    for email, cart in [("ann@example.org", "c-ann"), ("bob@example.org", "c-bob")]:
        started = post(client, cart_event(T0, cart_id=cart, email=email))
        assert started["enrollments_started"] == ["abandoned_cart"], email

    clock.set(T0 + timedelta(hours=1))
    run_due(app)
    first = sorted(
        (d.contact_id, d.status, d.reason) for d in deliveries(app) if d.step_id == "reminder_1"
    )
    assert [(status, reason) for _, status, reason in first] == [
        ("sent", None),
        ("skipped", "condition_false"),
    ]
    assert [m.to_addr for m in provider.outbox] == ["Ann Jansen <ann@example.org>"]


def test_last_name_and_is_customer_in_a_trigger_filter(
    make_app: AppFactory, tmp_path: Path
) -> None:
    workflows = _workflows(tmp_path, FILTER, None)
    client = TestClient(create_api(make_app(workflows_dir=workflows)))
    _people(client)
    post(client, profile_event(T0 - timedelta(days=2), email="cy@example.org", last_name="Blocked"))
    started = {
        email: post(client, cart_event(T0, cart_id=f"c-{email}", email=email))[
            "enrollments_started"
        ]
        for email in ("ann@example.org", "bob@example.org", "cy@example.org")
    }
    assert started == {
        "ann@example.org": ["abandoned_cart"],
        "bob@example.org": [],
        "cy@example.org": [],
    }
