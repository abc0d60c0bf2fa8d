"""The marketer's report's inputs: the rows ``db.report_rows`` reads, turned into the domain
values the figures are computed from (engagement summaries, orders, touches)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from remarket_mailer.db import report_rows as rows_db
from remarket_mailer.domain.attribution import AttributionWindows, Order, Touch, discount_taken
from remarket_mailer.domain.engagement import (
    DeliveryEngagement,
    EngagementEvent,
    EngagementKind,
    MachineRules,
    summarize,
)
from remarket_mailer.domain.states import DeliveryStatus

ReportDelivery = rows_db.ReportDelivery


def engagement(
    deliveries: Sequence[ReportDelivery],
    events: Sequence[rows_db.ReportEngagement],
    rules: MachineRules,
) -> dict[int, DeliveryEngagement]:
    """People's and machines' opens and clicks per sent delivery, timed from its delivery
    report (else its send)."""
    delivered: dict[int, datetime | None] = {
        d.id: d.sent_at for d in deliveries if d.status == DeliveryStatus.SENT
    }
    for event in events:
        if event.kind == "delivered" and event.delivery_id in delivered:
            sent = delivered[event.delivery_id]
            if sent is None or event.occurred_at > sent:
                delivered[event.delivery_id] = event.occurred_at
    engagement = [
        EngagementEvent(
            e.delivery_id,
            EngagementKind(e.kind),
            e.occurred_at,
            e.user_agent,
            url=e.detail if e.kind == "clicked" else None,
        )
        for e in events
        if e.kind in ("opened", "clicked")
    ]
    return summarize(delivered, engagement, rules)


def orders(
    found: Sequence[rows_db.ReportOrder], codes: Sequence[rows_db.ReportCode], currency: str
) -> list[Order]:
    """Orders as attribution sees them, in every currency (one without a currency is in
    ``currency``), with the code redeemed (one the steps gave out) and what it took off."""
    by_code = {c.code: c for c in codes}
    orders: list[Order] = []
    for o in found:
        if o.total is None:
            continue
        code = next((by_code[c] for c in o.codes if c in by_code), None)
        cost = Decimal("0") if code is None else discount_taken(code.kind, code.value, o.total)
        orders.append(
            Order(
                o.order_id,
                o.contact_id,
                o.placed_at,
                o.total,
                o.currency or currency,
                code.code if code else (o.codes[0] if o.codes else None),
                cost,
            )
        )
    return orders


def touch(d: ReportDelivery, engaged: DeliveryEngagement, windows: AttributionWindows) -> Touch:
    assert d.sent_at is not None  # summaries hold sent deliveries only
    return Touch(
        d.id,
        d.contact_id,
        d.workflow_id,
        d.step_id,
        d.sent_at,
        engaged.human_engaged_at,
        d.variant,
        windows,
    )


def event_kinds(events: Iterable[rows_db.ReportEngagement]) -> dict[int, set[str]]:
    kinds: dict[int, set[str]] = defaultdict(set)
    for event in events:
        kinds[event.delivery_id].add(event.kind)
    return kinds
