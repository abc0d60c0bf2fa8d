"""A report built the way the read side builds one: engagement summaries, attribution, the
holdout window and the experiments, from a seeded synthetic shop. Shared by the report model's
and the HTML page's unit tests (the Chromium test renders the demo's own report)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from remarket_mailer.domain.attribution import (
    AttributionWindows,
    Order,
    Touch,
    attribute,
    conversion_within,
)
from remarket_mailer.domain.engagement import EngagementEvent, EngagementKind, summarize
from remarket_mailer.domain.experiments import (
    Arm,
    WinnerRule,
    arms_by_variant,
    decide_winner,
    holdout_lift,
    variant_results,
)
from remarket_mailer.domain.report_model import (
    DayPoint,
    Funnel,
    LiftSummary,
    PoolLevel,
    ReasonCount,
    Report,
    StepReport,
    VariantReport,
    WorkflowReport,
)

START = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
WINDOWS = AttributionWindows()


def sample_report(contacts: int = 2400, seed: int = 19) -> Report:
    """An abandoned-cart workflow with a 10 % holdout and an A/B test on its first step (variant
    b converts better), and a small win-back workflow without a holdout."""
    rng = random.Random(seed)
    deliveries: dict[int, datetime | None] = {}
    events: list[EngagementEvent] = []
    touches: list[Touch] = []
    orders: list[Order] = []
    meta: dict[int, tuple[str, str, str | None, int]] = {}  # delivery → workflow, step, variant
    treated_start: dict[int, datetime] = {}
    holdout_start: dict[int, datetime] = {}
    bounced: set[int] = set()
    next_delivery = 1
    for contact in range(1, contacts + 1):
        start = START + timedelta(hours=rng.randrange(0, 24 * 21))
        if rng.random() < 0.1:
            holdout_start[contact] = start
            if rng.random() < 0.03:
                orders.append(order(contact, start + timedelta(hours=rng.uniform(1, 100)), rng))
            continue
        treated_start[contact] = start
        variant = "a" if rng.random() < 0.5 else "b"
        for step, delay in (("reminder_1", 0), ("reminder_2", 24)):
            d = next_delivery
            next_delivery += 1
            sent = start + timedelta(hours=delay)
            meta[d] = ("abandoned_cart", step, variant if step == "reminder_1" else None, contact)
            if rng.random() < 0.02:
                bounced.add(d)
                continue
            deliveries[d] = sent
            engaged = []
            if rng.random() < 0.35:  # Apple MPP prefetch
                events.append(
                    EngagementEvent(
                        d,
                        EngagementKind.OPENED,
                        sent + timedelta(seconds=30),
                        "Mozilla/5.0",
                        "17.2.3.4",
                    )
                )
            if rng.random() < 0.3:
                at = sent + timedelta(minutes=rng.uniform(20, 600))
                events.append(EngagementEvent(d, EngagementKind.OPENED, at, "Mozilla/5.0 (X)"))
                click_rate = 0.4 if variant == "b" else 0.25
                if rng.random() < click_rate:
                    at = at + timedelta(minutes=2)
                    events.append(
                        EngagementEvent(
                            d,
                            EngagementKind.CLICKED,
                            at,
                            "Mozilla/5.0 (X)",
                            url="https://shop.test/cart",
                        )
                    )
                    engaged.append(at)
                    buy = 0.45 if variant == "b" and step == "reminder_1" else 0.3
                    if rng.random() < buy:
                        orders.append(
                            order(contact, at + timedelta(hours=rng.uniform(0.2, 60)), rng)
                        )
        if rng.random() < 0.02:
            orders.append(order(contact, start + timedelta(hours=rng.uniform(1, 100)), rng))
    summaries = summarize(deliveries, events)
    for d, sent in deliveries.items():
        workflow, step, variant, contact = meta[d]
        assert sent is not None
        touches.append(
            Touch(d, contact, workflow, step, sent, summaries[d].human_engaged_at, variant, WINDOWS)
        )
    conversions = attribute(orders, touches)
    by_contact: dict[int, list[Order]] = {}
    for o in orders:
        by_contact.setdefault(o.contact_id, []).append(o)

    def outcome(contact: int, start: datetime) -> object:
        return conversion_within(start, by_contact.get(contact, []), WINDOWS.lift_window)

    treated = Arm.of(outcome(c, s) for c, s in treated_start.items())  # type: ignore[misc]
    holdout = Arm.of(outcome(c, s) for c, s in holdout_start.items())  # type: ignore[misc]
    lift = LiftSummary.of(
        holdout_lift(treated, holdout, bootstrap_resamples=400), WINDOWS.lift_window
    )

    def funnel(selected: list[int]) -> Funnel:
        ids = set(selected)
        credited = [c for c in conversions if c.delivery_id in ids]
        return Funnel(
            sent=len(ids),
            delivered=len(ids - bounced),
            bounced=len(ids & bounced),
            complained=sum(1 for d in ids if d % 397 == 0),
            unsubscribed=sum(1 for d in ids if d % 83 == 0),
            opened_human=sum(1 for d in ids if d in summaries and summaries[d].opened),
            opened_machine=sum(1 for d in ids if d in summaries and summaries[d].machine_opened),
            clicked=sum(1 for d in ids if d in summaries and summaries[d].clicked),
            converted=len(credited),
            revenue=sum((c.revenue for c in credited), Decimal("0")),
            discount_cost=sum((c.discount_cost for c in credited), Decimal("0")),
        )

    steps = []
    for step in ("reminder_1", "reminder_2"):
        ids = [d for d, m in meta.items() if m[1] == step]
        variants: tuple[VariantReport, ...] = ()
        winner = None
        if step == "reminder_1":
            pairs = [
                (
                    meta[d][2] or "",
                    conversion_within(
                        treated_start[meta[d][3]],
                        by_contact.get(meta[d][3], []),
                        WINDOWS.lift_window,
                    ),
                )
                for d in ids
            ]
            arms = arms_by_variant(sorted(pairs, key=lambda p: p[0]))
            results = variant_results(arms)
            variants = tuple(
                VariantReport.of(r, funnel([d for d in ids if meta[d][2] == r.variant]))
                for r in results
            )
            winner = decide_winner(arms, WinnerRule(min_recipients=500))
        steps.append(
            StepReport(
                step,
                funnel(ids),
                skipped=(ReasonCount("holdout", len(holdout_start)), ReasonCount("exited", 41))
                if step == "reminder_1"
                else (ReasonCount("exited", 97),),
                deferred=(ReasonCount("quiet_hours", 130), ReasonCount("capped", 12)),
                variants=variants,
                winner=winner,
            )
        )
    days: dict[date, list[int]] = {}
    for d, sent in deliveries.items():
        assert sent is not None
        days.setdefault(sent.date(), []).append(d)
    revenue_by_day: dict[date, Decimal] = {}
    conversions_by_day: dict[date, int] = {}
    for c in conversions:
        revenue_by_day[c.placed_at.date()] = (
            revenue_by_day.get(c.placed_at.date(), Decimal("0")) + c.revenue
        )
        conversions_by_day[c.placed_at.date()] = conversions_by_day.get(c.placed_at.date(), 0) + 1
    all_days = sorted(set(days) | set(revenue_by_day))
    daily = tuple(
        DayPoint(
            day,
            len(days.get(day, [])),
            conversions_by_day.get(day, 0),
            revenue_by_day.get(day, Decimal("0")),
        )
        for day in all_days
    )
    basis: dict[str, int] = {}
    for c in conversions:
        basis[c.basis.value] = basis.get(c.basis.value, 0) + 1
    cart = WorkflowReport(
        "abandoned_cart",
        "Abandoned cart",
        tuple(steps),
        lift=lift,
        codes_issued=len(treated_start),
        codes_redeemed=sum(1 for c in conversions if c.discount_code),
        pools=(PoolLevel("spring-codes", 180, 320),),
        daily=daily,
        conversions_by_basis=tuple(ReasonCount(k, v) for k, v in sorted(basis.items())),
    )
    win_back = WorkflowReport(
        "win_back",
        "Win-back",
        (
            StepReport(
                "we_miss_you",
                Funnel(
                    sent=120,
                    delivered=118,
                    bounced=2,
                    opened_human=31,
                    opened_machine=40,
                    clicked=9,
                    converted=3,
                    revenue=Decimal("187.40"),
                ),
            ),
        ),
    )
    return Report(
        START + timedelta(days=30), START, START + timedelta(days=30), "EUR", (cart, win_back)
    )


def order(contact: int, at: datetime, rng: random.Random) -> Order:
    total = Decimal(str(round(rng.uniform(25, 140), 2)))
    coded = rng.random() < 0.7
    return Order(
        f"o{contact}-{at.timestamp():.0f}",
        contact,
        at,
        total,
        "EUR",
        f"CART-{contact:05d}" if coded else None,
        (total * Decimal("0.10")).quantize(Decimal("0.01")) if coded else Decimal("0"),
    )
