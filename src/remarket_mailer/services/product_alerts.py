"""The alert job: catalog changes become back-in-stock and price-drop events for the people
who viewed or carted the product.

Ingest notes every product an upsert leaves in stock (``product_changes``, in the upsert's
transaction, whichever way it came: the events API, a shop webhook, a feed import). This job,
run by the scheduler (and by the demo and ``remarket simulate`` on their clock), takes a page
of notes, reads the products and the interests in them, asks ``domain.product_alerts`` who is
owed an alert, and ingests those as ``product.back_in_stock`` / ``product.price_dropped``
contact events, which the workflows take from there. Then it marks what it announced and
deletes the notes it handled.

Crash-safe by construction: each alert's event id is derived from the contact, the product
and the change, so a run that dies after ingesting and before marking derives the same ids
again and ingest answers "duplicate" (the same id with a changed body, e.g. a renamed
product, is a conflict, and is not applied either). A note is only deleted after its events
are in.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from remarket_mailer.db import catalog as catalog_db
from remarket_mailer.db import interests as interests_db
from remarket_mailer.db.catalog import ProductFacts
from remarket_mailer.db.interests import InterestedContact
from remarket_mailer.domain.clock import Clock
from remarket_mailer.domain.product_alerts import DEFAULT_WINDOW, Alert, derive_alerts
from remarket_mailer.errors import ConflictError, ValidationError
from remarket_mailer.schemas import IncomingEvent, parse_event
from remarket_mailer.services.ingest import ingest_batch
from remarket_mailer.services.unit_of_work import UnitOfWork
from remarket_mailer.workflows.loader import WorkflowSet

log = logging.getLogger(__name__)

PAGE = 500
"""Product notes per run of the loop (each page: four reads, one ingest, one write)."""
_EVENT_TYPE = {"back_in_stock": "product.back_in_stock", "price_dropped": "product.price_dropped"}


@dataclass
class AlertReport:
    products: int = 0
    """Product notes handled."""
    back_in_stock: int = 0
    price_dropped: int = 0
    """Alerts derived (new events; replays of one already derived are ``duplicates``)."""
    duplicates: int = 0
    enrollments: int = 0


def alert_kinds(workflows: WorkflowSet) -> tuple[bool, Decimal | None]:
    """(any enabled workflow starts on back in stock, the smallest price drop one starts on —
    None if none starts on price drops): nothing is derived that no workflow would use."""
    enabled = [w for w in workflows.workflows.values() if w.enabled]
    restock = any("product.back_in_stock" in w.trigger.events for w in enabled)
    drops = [
        w.trigger.drop_percent() for w in enabled if "product.price_dropped" in w.trigger.events
    ]
    return restock, (min(drops) if drops else None)


def derive_product_alerts(
    uow: UnitOfWork,
    workflows: WorkflowSet,
    clock: Clock,
    *,
    window: timedelta = DEFAULT_WINDOW,
    page: int = PAGE,
) -> AlertReport:
    """Handle every product note: derive and ingest the alerts they owe. Raises
    UnavailableError when the database cannot be reached (the notes stay)."""
    report = AlertReport()
    restock, drop_percent = alert_kinds(workflows)
    while True:
        now = clock.now()
        with uow() as session:
            notes = interests_db.pending_changes(session, page)
            if not notes:
                break
            product_ids = {p for _, p in notes}
            interested: list[InterestedContact] = []
            if restock or drop_percent is not None:
                interested = interests_db.interests_in(session, product_ids, now - window)
            states = interests_db.product_states(
                session, {c.interest.product_id for c in interested}
            )
            alerts = derive_alerts(
                (c.interest for c in interested),
                states,
                now,
                window=window,
                drop_percent=drop_percent,
                restock=restock,
            )
            products = catalog_db.products_by_id(session, {a.product_id for a in alerts})
        refs = {(c.interest.contact_id, c.interest.product_id): c for c in interested}
        alerts = [a for a in alerts if a.product_id in products]
        _ingest(uow, workflows, clock, alerts, refs, products, report)
        with uow() as session:
            interests_db.mark_announced(session, alerts)
            interests_db.forget_changes(session, [i for i, _ in notes])
        report.products += len(notes)
        if len(notes) < page:
            break
    if report.back_in_stock or report.price_dropped:
        log.info(
            "product alerts: products=%d back_in_stock=%d price_dropped=%d duplicates=%d "
            "enrollments=%d",
            *(report.products, report.back_in_stock, report.price_dropped),
            *(report.duplicates, report.enrollments),
        )
    return report


def _ingest(
    uow: UnitOfWork,
    workflows: WorkflowSet,
    clock: Clock,
    alerts: Sequence[Alert],
    refs: dict[tuple[int, str], InterestedContact],
    products: dict[str, ProductFacts],
    report: AlertReport,
) -> None:
    items: list[tuple[IncomingEvent, dict[str, Any]]] = []
    for alert in alerts:
        contact = refs[(alert.contact_id, alert.product_id)]
        raw = alert_event(alert, contact, products[alert.product_id])
        try:
            items.append((parse_event(raw), raw))
        except PydanticValidationError as exc:  # a catalog value the event refuses
            log.warning("derived event %s not valid: %s", alert.event_id, exc.errors()[0]["msg"])
    for start in range(0, len(items), 1_000):
        chunk = items[start : start + 1_000]
        outcomes = ingest_batch(uow, workflows, clock, chunk)
        for (event, _), outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, ValidationError):
                log.warning("derived event %s not applied: %s", event.event_id, outcome)
            elif isinstance(outcome, ConflictError) or outcome.duplicate:
                report.duplicates += 1
            else:
                kind = "back_in_stock" if event.type == "product.back_in_stock" else "price_dropped"
                setattr(report, kind, getattr(report, kind) + 1)
                report.enrollments += len(outcome.started)


def alert_event(alert: Alert, contact: InterestedContact, product: ProductFacts) -> dict[str, Any]:
    """The derived event's body: the same alert and product give the same body (a replay is
    a duplicate, not a conflict)."""
    ref = {k: v for k, v in (("external_id", contact.external_id), ("email", contact.email)) if v}
    body: dict[str, Any] = {
        "event_id": alert.event_id,
        "type": _EVENT_TYPE[alert.kind],
        "occurred_at": alert.occurred_at.isoformat(),
        "contact": ref,
        "product_id": alert.product_id,
        "name": product.title,
        "url": product.url,
        "image_url": product.image_url,
        "price": _money(alert.price if alert.price is not None else product.price),
        "compare_at_price": _money(product.compare_at_price),
        "currency": alert.currency or product.currency,
        "category": product.category,
    }
    if alert.kind == "price_dropped":
        body["previous_price"] = _money(alert.previous_price)
        body["drop_percent"] = str(alert.drop_percent)
    return {k: v for k, v in body.items() if v is not None}


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(Decimal("0.01")))
