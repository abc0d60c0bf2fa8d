"""The demo's generated shoppers and its experiment settings."""

from __future__ import annotations

from remarket_mailer.entrypoints.demo_shop import (
    DOMAIN,
    HOLDOUT_PERCENT,
    cart_totals,
    demo_workflows,
    is_shopper,
    shopper_events,
)
from remarket_mailer.schemas import parse_event
from remarket_mailer.workflows.loader import load_workflows
from tests.conftest import ROOT


def test_the_demo_tests_its_first_reminder_and_holds_some_shoppers_out() -> None:
    stock = load_workflows(ROOT / "workflows")
    demo = demo_workflows(stock)
    cart = demo.workflows["abandoned_cart"]
    assert cart.holdout_percent == HOLDOUT_PERCENT > 0
    assert [v.id for v in cart.steps[0].variants] == ["a", "b"]
    assert cart.version != stock.workflows["abandoned_cart"].version
    assert stock.workflows["abandoned_cart"].holdout_percent == 0  # the stock file's stays
    assert set(demo.workflows) == set(stock.workflows)


def test_shoppers_are_seeded_valid_events() -> None:
    events = shopper_events(20)
    assert events == shopper_events(20) and events != shopper_events(20, seed=1)
    for raw in events:
        parse_event(raw)  # raises on an invalid event
    totals = cart_totals(events)
    assert len(totals) == 20 and all(is_shopper(address) for address in totals)
    assert not is_shopper("ann.devries@example.org") and is_shopper(f"x@{DOMAIN}")
