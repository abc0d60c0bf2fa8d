"""The demo's generated shoppers: enough of them for the report to have something to measure.

A few hundred seeded shoppers leave carts in the week before the bundled sample's story. The
demo's abandoned-cart workflow holds 10 % of them out and tests two versions of its first
reminder (``demo_workflows``: demo-only settings; the stock file is unchanged). While the
virtual clock runs, the shoppers react to what reaches them (``ShopperReactions``): a link
scanner opens and clicks some emails seconds after they arrive (a machine), some people open
and click, and some of those buy, with the email's code when it carried one; held-out
shoppers and people who never clicked buy less often. Opens and clicks go in through
``record_engagement`` (the pixel's and redirect's door), orders as ``order.placed`` events.
"""

from __future__ import annotations

import dataclasses
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from remarket_mailer.domain.clock import Clock
from remarket_mailer.domain.experiments import WinnerRule
from remarket_mailer.domain.workflow import Variant
from remarket_mailer.services.delivery_outcomes import DeliveryRow, delivery_outcomes
from remarket_mailer.services.unit_of_work import UnitOfWork
from remarket_mailer.services.webhooks import record_engagement
from remarket_mailer.workflows.loader import WorkflowSet, workflow_version

SHOPPERS = 500
SEED = 19
DOMAIN = "shoppers.example.net"
CART_WORKFLOW = "abandoned_cart"
HOLDOUT_PERCENT = 10
"""A common control-group size. The holdout is decided after consent, caps, quiet hours and
the step's condition, so a sample shopper the worker may not mail (Eva, who never consented)
keeps her "no consent" story instead of being counted in the control group."""
WINNER_RULE = WinnerRule(min_recipients=150, alpha=0.05)
"""The first reminder's A/B test stops once each variant has 150 recipients whose lift window
has run and one is better at p < 0.05: the demo decides it when its clock stops (the
scheduler's hourly job would), so the report shows the test's history."""
BASE_RATE = 0.06
"""How often a shopper buys without an email's help (held out, or never clicked)."""
_CODE_PERCENT = {"reminder_2": 10, "last_chance": 15}  # the stock steps' codes
FIRST_DAY = datetime(2026, 10, 26, tzinfo=UTC)
"""The week before the bundled sample's carts: everything converts before the clock stops."""

_NAMES = ("Alex", "Sam", "Noor", "Lena", "Jonas", "Mia", "Tom", "Sara", "Lucas", "Emma")
_PRODUCTS = (
    ("MUG-01", "Stoneware mug", "12.50"),
    ("TEA-07", "Earl Grey, 250 g", "49.50"),
    ("KETTLE-2", "Gooseneck kettle", "129.00"),
    ("POT-03", "Tea pot, 1 l", "39.00"),
    ("CUP-SET", "Cup set of four", "28.00"),
)


def demo_workflows(stock: WorkflowSet) -> WorkflowSet:
    """The stock workflows, with a holdout and an A/B first reminder (with a winner rule) in
    the abandoned cart."""
    result = WorkflowSet()
    for workflow_id, workflow in stock.workflows.items():
        source = stock.sources[workflow_id]
        if workflow_id == CART_WORKFLOW:
            first = workflow.steps[0]
            variants = (
                Variant("a", first.template, 1),
                Variant("b", "abandoned_cart/reminder_2", 1),  # "your cart is saved" copy
            )
            source += (
                f"# demo: holdout_percent {HOLDOUT_PERCENT}; {first.id} variants "
                "a (its template) and b (abandoned_cart/reminder_2), winner after 150, "
                "alpha 0.05\n"
            )
            workflow = dataclasses.replace(
                workflow,
                holdout_percent=HOLDOUT_PERCENT,
                steps=(
                    dataclasses.replace(first, variants=variants, winner=WINNER_RULE),
                    *workflow.steps[1:],
                ),
                version=workflow_version(source),
            )
        result.add(workflow, source)
    return result


def is_shopper(email: str | None) -> bool:
    return (email or "").endswith("@" + DOMAIN)


def shopper_events(shoppers: int = SHOPPERS, seed: int = SEED) -> list[dict[str, Any]]:
    """Profile, consent and one abandoned cart per shopper, the carts on the hour between
    09:00 and 17:00 UTC over four days (few distinct moments: the clock has less to visit)."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    for n in range(shoppers):
        contact = {"external_id": f"shopper-{n:04d}", "email": f"shopper{n:04d}@{DOMAIN}"}
        at = FIRST_DAY + timedelta(days=rng.randrange(4), hours=9 + 2 * rng.randrange(5))
        before = (at - timedelta(minutes=5)).isoformat()
        chosen = rng.sample(_PRODUCTS, rng.randint(1, 2))
        items = [
            {"sku": sku, "product_id": sku, "name": name, "quantity": 1, "unit_price": price}
            for sku, name, price in chosen
        ]
        total = sum((Decimal(price) for _, _, price in chosen), Decimal("0"))
        common = {"contact": contact}
        events += [
            {"event_id": f"shopper-{n}-profile", "type": "contact.upserted",
             "occurred_at": before, "first_name": rng.choice(_NAMES),
             "locale": "en", "timezone": "Europe/Amsterdam", **common},
            {"event_id": f"shopper-{n}-consent", "type": "consent.changed",
             "occurred_at": before, "topic": "marketing", "status": "granted",
             "source": "checkout checkbox", **common},
            {"event_id": f"shopper-{n}-cart", "type": "cart.updated", "occurred_at":
             at.isoformat(), "cart_id": f"shopper-cart-{n}", "currency": "EUR",
             "total": str(total), "items": items,
             "checkout_url": f"https://shop.example.com/checkout/shopper-cart-{n}", **common},
        ]  # fmt: skip
    return events


@dataclass
class ShopperCounts:
    shoppers: int = 0
    emails: int = 0
    held_out: int = 0
    machine_hits: int = 0
    opens: int = 0
    clicks: int = 0
    orders: int = 0


@dataclass
class ShopperReactions:
    """What the shoppers do with what reaches them, timed on the virtual clock.

    ``after_sends`` looks at the deliveries the last sweep finished and plans reactions;
    ``next_at`` is the next planned one; ``run_due`` does those due by now (opens and clicks
    through ``record_engagement``; orders handed to ``place_order`` as events).
    """

    uow: UnitOfWork
    place_order: Callable[[dict[str, Any]], None]
    totals: dict[str, Decimal]
    """Each shopper's cart total, by address: what an order pays before any code."""
    seed: int = SEED
    counts: ShopperCounts = field(default_factory=ShopperCounts)
    _planned: list[tuple[datetime, int, str, int, str, str | None]] = field(default_factory=list)
    _buying: set[str] = field(default_factory=set)
    _seen: set[int] = field(default_factory=set)
    _order: int = 0

    def next_at(self) -> datetime | None:
        return self._planned[0][0] if self._planned else None

    def after_sends(self, since: datetime) -> None:
        for row in delivery_outcomes(self.uow, since):
            if row.id in self._seen or not is_shopper(row.contact_email):
                continue
            if row.status == "sent" or (row.status == "skipped" and row.reason == "holdout"):
                self._seen.add(row.id)
                self._react(row)

    def _plan(self, at: datetime, kind: str, row: DeliveryRow, detail: str | None) -> None:
        self._order += 1
        moment = at if kind != "order" else at.replace(second=0, microsecond=0)
        email = row.contact_email or ""
        heapq.heappush(self._planned, (moment, self._order, kind, row.id, email, detail))

    def _react(self, row: DeliveryRow) -> None:
        rng = random.Random(f"{self.seed}:{row.contact_email}:{row.step_id}")
        email = row.contact_email or ""
        first = row.workflow_id == CART_WORKFLOW and row.step_id == "reminder_1"
        if row.status == "skipped":  # held out: buys now and then anyway
            self.counts.held_out += first
            if first and rng.random() < BASE_RATE:
                self._buy(row, row.due_at + timedelta(hours=rng.uniform(2, 90)), None)
            return
        self.counts.emails += 1
        sent = row.sent_at or row.due_at
        if row.workflow_id != CART_WORKFLOW:
            return
        url = f"https://shop.example.com/checkout/{email}"
        if rng.random() < 0.1:  # a link scanner, seconds after arrival
            self._plan(sent + timedelta(seconds=2), "opened", row, None)
            self._plan(sent + timedelta(seconds=3), "clicked", row, url + "#scan")
            self.counts.machine_hits += 1
        if rng.random() < 0.4:
            opened = sent + timedelta(minutes=10 * rng.randint(2, 48))
            self._plan(opened, "opened", row, None)
            better = row.step_id == "reminder_1" and row.template.endswith("reminder_2")
            if rng.random() < (0.45 if better else 0.3):
                clicked = opened + timedelta(minutes=2)
                self._plan(clicked, "clicked", row, url)
                if rng.random() < 0.45:
                    self._buy(row, clicked + timedelta(hours=rng.uniform(0.2, 30)), row)
                return
        if first and rng.random() < BASE_RATE:  # as often as the held-out shoppers
            self._buy(row, sent + timedelta(hours=rng.uniform(2, 90)), None)

    def _buy(self, row: DeliveryRow, at: datetime, coded: DeliveryRow | None) -> None:
        email = row.contact_email or ""
        if email in self._buying:  # one order per shopper
            return
        self._buying.add(email)
        code = coded.discount_code if coded is not None else None
        self._plan(at, "order", row, code and f"{coded.step_id if coded else ''}:{code}")

    def run_due(self, clock: Clock) -> None:
        """Do what is planned up to ``clock``'s now, each at its own moment."""
        now = clock.now()
        while self._planned and self._planned[0][0] <= now:
            at, _, kind, delivery_id, email, detail = heapq.heappop(self._planned)
            if kind == "order":
                self._place(at, email, detail)
            elif record_engagement(self.uow, _At(at), delivery_id, kind, detail):  # type: ignore[arg-type]
                self.counts.opens += kind == "opened"
                self.counts.clicks += kind == "clicked"

    def _place(self, at: datetime, email: str, coded: str | None) -> None:
        n = email.removeprefix("shopper").partition("@")[0]
        step, _, code = (coded or "").partition(":")
        total = self.totals.get(email, Decimal("50.00"))
        if code:  # the shop took the code's percentage off the cart
            total = (total * (100 - _CODE_PERCENT.get(step, 0)) / 100).quantize(Decimal("0.01"))
        self.counts.orders += 1
        self.place_order(
            {
                "event_id": f"shopper-{n}-order",
                "type": "order.placed",
                "occurred_at": at.isoformat(),
                "contact": {"external_id": f"shopper-{n}", "email": email},
                "order_id": f"shopper-order-{n}",
                "cart_id": f"shopper-cart-{int(n)}",
                "currency": "EUR",
                "total": str(total),
                "discount_codes": [code] if code else [],
            }
        )


@dataclass(frozen=True, slots=True)
class _At:
    """A clock stopped at one moment: an open or click recorded when it happened."""

    moment: datetime

    def now(self) -> datetime:
        return self.moment


def cart_totals(events: list[dict[str, Any]]) -> dict[str, Decimal]:
    """Each shopper's cart total by address, from ``shopper_events``."""
    return {
        e["contact"]["email"]: Decimal(e["total"]) for e in events if e["type"] == "cart.updated"
    }
