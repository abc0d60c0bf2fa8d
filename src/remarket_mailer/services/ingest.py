"""ingest_event: one accepted event and all its effects commit in one transaction.

insert event (unique event_id → a replay is a no-op) → upsert contact and facts → exit rules
→ triggers (start or refresh enrollments, schedule deliveries). A crash anywhere leaves nothing
half-written; a crash after the commit loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from remarket_mailer.db import repository as repo
from remarket_mailer.db.models import (
    Cart,
    Consent,
    Contact,
    Delivery,
    Enrollment,
    Subscription,
)
from remarket_mailer.domain.clock import Clock
from remarket_mailer.domain.policy import in_holdout
from remarket_mailer.domain.states import DeliveryStatus, EnrollmentStatus
from remarket_mailer.domain.workflow import Workflow, plan_due_times
from remarket_mailer.errors import ConflictError, ValidationError
from remarket_mailer.schemas import (
    AnyEvent,
    CartEmptied,
    CartUpdated,
    CheckoutStarted,
    ConsentChanged,
    ContactUnsubscribed,
    ContactUpserted,
    OrderPlaced,
    SubscriptionCancelled,
    SubscriptionRenewed,
    SubscriptionUpserted,
)
from remarket_mailer.services.discounts import redeem_in_session
from remarket_mailer.services.unit_of_work import UnitOfWork
from remarket_mailer.workflows.expressions import evaluate
from remarket_mailer.workflows.loader import WorkflowSet

log = logging.getLogger(__name__)

_ATTEMPTS = 3


@dataclass
class IngestResult:
    event_id: str
    duplicate: bool = False
    started: list[str] = field(default_factory=list)
    """Workflow ids in which this event started an enrollment."""
    refreshed: list[str] = field(default_factory=list)
    exited: int = 0


def body_hash(raw: dict[str, Any]) -> str:
    """Hash of the event as sent: the same event_id with another body is a conflict (409)."""
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def ingest_event(
    uow: UnitOfWork,
    workflows: WorkflowSet,
    clock: Clock,
    event: AnyEvent,
    raw: dict[str, Any],
) -> IngestResult:
    """Record ``event`` and apply it. Raises ConflictError when the event_id was used before
    with a different body, ValidationError when a workflow expression cannot be evaluated."""
    digest = body_hash(raw)
    for attempt in range(_ATTEMPTS):
        try:
            with uow() as session:
                return _ingest(session, workflows, clock.now(), event, raw, digest)
        except IntegrityError:
            # A concurrent event created the same contact, cart or enrollment first: run
            # again, and this time find it.
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def ingest_batch(
    uow: UnitOfWork,
    workflows: WorkflowSet,
    clock: Clock,
    items: Sequence[tuple[AnyEvent, dict[str, Any]]],
) -> list[IngestResult | ConflictError]:
    """Ingest many events in one transaction, each in its own savepoint.

    One bad event (a conflicting replay) rolls back only its own savepoint; the others commit
    together, so a batch of 1,000 costs one commit, not 1,000.
    """
    results: list[IngestResult | ConflictError] = []
    with uow() as session:
        now = clock.now()
        for event, raw in items:
            digest = body_hash(raw)
            for attempt in range(_ATTEMPTS):
                try:
                    with session.begin_nested():
                        results.append(_ingest(session, workflows, now, event, raw, digest))
                    break
                except ConflictError as exc:
                    results.append(exc)
                    break
                except IntegrityError:
                    if attempt == _ATTEMPTS - 1:
                        raise
    return results


def _ingest(
    session: Session,
    workflows: WorkflowSet,
    now: datetime,
    event: AnyEvent,
    raw: dict[str, Any],
    digest: str,
) -> IngestResult:
    result = IngestResult(event.event_id)
    contact = repo.get_or_create_contact(
        session, event.contact.external_id, event.contact.email, now
    )
    stored = {
        "event_id": event.event_id,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "received_at": now,
        "contact_id": contact.id,
        "body_hash": digest,
        "payload": json.loads(json.dumps(raw, default=str)),
    }
    if not repo.insert_event(session, stored):
        # The event_id is known (a replay, or a concurrent copy that won the insert): a
        # duplicate, or a conflict if the body differs (raises), never a second effect.
        _is_duplicate(session, event.event_id, digest)
        result.duplicate = True
        return result
    facts = _apply_facts(session, contact, event, now)
    result.exited = _apply_exits(session, workflows, contact, event, now)
    if facts.may_trigger:
        _apply_triggers(session, workflows, contact, event, facts, now, result)
    return result


def _is_duplicate(session: Session, event_id: str, digest: str) -> bool:
    existing = repo.find_event(session, event_id)
    if existing is None:
        return False
    if existing.body_hash != digest:
        raise ConflictError(f"event_id {event_id!r} was already used for a different event body")
    return True


@dataclass
class _Facts:
    may_trigger: bool = True
    cart: Cart | None = None


def _items(items: Any) -> dict[str, Any]:
    return {"items": [json.loads(item.model_dump_json()) for item in items]}


def _apply_facts(session: Session, contact: Contact, event: AnyEvent, now: datetime) -> _Facts:
    """Upsert contact/cart/order/subscription facts; the newest occurred_at wins."""
    facts = _Facts()
    at = event.occurred_at
    if isinstance(event, ContactUpserted):
        for name in ("first_name", "last_name", "locale", "timezone"):
            value = getattr(event, name)
            if value is not None:
                setattr(contact, name, value)
        if event.attributes:
            contact.attributes = {**contact.attributes, **event.attributes}
        contact.updated_at = now
    elif isinstance(event, ConsentChanged):
        repo.add_consent(
            session,
            Consent(
                contact_id=contact.id,
                topic=event.topic,
                status=event.status,
                source=event.source,
                evidence=event.evidence,
                occurred_at=at,
                recorded_at=now,
            ),
        )
    elif isinstance(event, ContactUnsubscribed):
        if event.topic is None:
            if contact.email:
                repo.suppress(session, contact.email, "unsubscribed", event.source, now)
            repo.skip_pending_for_contact(session, contact.id, "suppressed", "unsubscribed", now)
        else:
            repo.add_consent(
                session,
                Consent(
                    contact_id=contact.id,
                    topic=event.topic,
                    status="withdrawn",
                    source=event.source or "contact.unsubscribed",
                    occurred_at=at,
                    recorded_at=now,
                ),
            )
    elif isinstance(event, CartUpdated | CheckoutStarted):
        facts.cart = _upsert_cart(session, contact, event)
        facts.may_trigger = facts.cart.ordered_at is None and facts.cart.updated_at == at
    elif isinstance(event, CartEmptied):
        cart = repo.get_cart(session, event.cart_id, for_update=True)
        if cart is not None and (cart.emptied_at is None or cart.emptied_at < at):
            cart.emptied_at = at
    elif isinstance(event, OrderPlaced):
        _record_order(session, contact, event)
    elif isinstance(event, SubscriptionUpserted | SubscriptionRenewed | SubscriptionCancelled):
        _upsert_subscription(session, contact, event)
    return facts


def _upsert_cart(session: Session, contact: Contact, event: CartUpdated | CheckoutStarted) -> Cart:
    cart = repo.get_cart(session, event.cart_id, for_update=True)
    if cart is None:
        cart = repo.add_cart(session, Cart(cart_id=event.cart_id, contact_id=contact.id, items={}))
    if cart.updated_at is None or event.occurred_at >= cart.updated_at:
        cart.contact_id = contact.id
        cart.currency = event.currency
        cart.total = event.total
        cart.items = _items(event.items)
        cart.checkout_url = str(event.checkout_url) if event.checkout_url else None
        cart.updated_at = event.occurred_at
        if cart.emptied_at is not None and cart.emptied_at < event.occurred_at:
            cart.emptied_at = None
    return cart


def _record_order(session: Session, contact: Contact, event: OrderPlaced) -> None:
    new_order = repo.add_order(
        session,
        {
            "order_id": event.order_id,
            "contact_id": contact.id,
            "cart_id": event.cart_id,
            "currency": event.currency,
            "total": event.total,
            "items": _items(event.items),
            "discount_codes": {"codes": list(event.discount_codes)},
            "placed_at": event.occurred_at,
        },
    )
    if new_order:
        for code in event.discount_codes:
            outcome = redeem_in_session(
                session,
                code,
                order_id=event.order_id,
                contact_id=contact.id,
                now=event.occurred_at,
            )
            if not outcome.redeemed and outcome.reason != "unknown":
                log.warning(
                    "order=%s used discount code refused: %s", event.order_id, outcome.reason
                )
    if contact.first_order_at is None or event.occurred_at < contact.first_order_at:
        contact.first_order_at = event.occurred_at
    if event.cart_id:
        cart = repo.get_cart(session, event.cart_id, for_update=True)
        if cart is None:
            # The order can arrive before the cart event it converts: remember it, so the late
            # cart.updated does not start reminders for a cart that was already bought.
            cart = repo.add_cart(
                session, Cart(cart_id=event.cart_id, contact_id=contact.id, items={})
            )
        if cart.ordered_at is None or event.occurred_at < cart.ordered_at:
            cart.ordered_at = event.occurred_at
            cart.order_id = event.order_id


def _upsert_subscription(
    session: Session,
    contact: Contact,
    event: SubscriptionUpserted | SubscriptionRenewed | SubscriptionCancelled,
) -> None:
    sub = repo.get_subscription(session, event.subscription_id)
    if sub is None:
        sub = Subscription(subscription_id=event.subscription_id, contact_id=contact.id)
        session.add(sub)
    if sub.updated_at is not None and event.occurred_at < sub.updated_at:
        return
    sub.updated_at = event.occurred_at
    if isinstance(event, SubscriptionUpserted):
        sub.plan, sub.status, sub.renews_at = event.plan, event.status, event.renews_at
        sub.price, sub.currency = event.price, event.currency
    elif isinstance(event, SubscriptionRenewed):
        sub.status = "active"
        if event.renews_at is not None:
            sub.renews_at = event.renews_at
    else:
        sub.status = "cancelled"


def enrollment_key(workflow: Workflow, event: AnyEvent, contact: Contact) -> str | None:
    """The value that identifies one enrollment of ``workflow`` for ``event``.

    Contact-keyed workflows get one key per triggering event (one active enrollment per
    contact is enforced separately); a subscription gets one per renewal date, so every
    billing period has its own reminders.
    """
    name = workflow.trigger.key
    if name == "contact":
        return f"contact:{contact.id}:{event.event_id}"
    value = getattr(event, name, None)
    if not value:
        return None
    renews_at = getattr(event, "renews_at", None)
    if name == "subscription_id" and renews_at is not None:
        return f"{value}@{renews_at.date().isoformat()}"
    return str(value)


def _date_facts(event: AnyEvent) -> dict[str, datetime]:
    facts = {"occurred_at": event.occurred_at}
    renews_at = getattr(event, "renews_at", None)
    if renews_at is not None:
        facts["renews_at"] = renews_at
    if isinstance(event, OrderPlaced):
        facts["placed_at"] = event.occurred_at
    return facts


def _exit_key(match_key: str, event: AnyEvent) -> str | None:
    value = getattr(event, match_key, None)
    return str(value) if value else None


def _apply_exits(
    session: Session, workflows: WorkflowSet, contact: Contact, event: AnyEvent, now: datetime
) -> int:
    ended = 0
    for workflow, match in workflows.exited_by(event.type):
        if match == "key":
            key = _exit_key(workflow.trigger.key, event)
            if key is None:
                continue
            found = repo.active_enrollments(session, workflow.id, key=key)
        else:
            # Only enrollments that began before this event: an order placed before a new cart
            # was abandoned says nothing about that cart.
            found = repo.active_enrollments(
                session, workflow.id, contact_id=contact.id, started_before=event.occurred_at
            )
        ids = [e.id for e in found]
        if not ids:
            continue
        reason = f"{event.type} ({'same ' + workflow.trigger.key if match == 'key' else 'contact'})"
        repo.skip_pending_for_enrollments(session, ids, "exited", reason, now)
        ended += repo.end_enrollments(session, ids, EnrollmentStatus.EXITED, reason, now)
        for enrollment in found:
            enrollment.status = EnrollmentStatus.EXITED
    return ended


def _context(contact: Contact, event: AnyEvent, cart: Cart | None) -> dict[str, Any]:
    return {
        "event": json.loads(event.model_dump_json()),
        "contact": {
            "email": contact.email,
            "first_name": contact.first_name,
            "locale": contact.locale,
            "timezone": contact.timezone,
            "attributes": contact.attributes,
            "is_customer": contact.first_order_at is not None,
        },
        "cart": cart_view(cart) if cart is not None else None,
    }


def cart_view(cart: Cart) -> dict[str, Any]:
    """A cart as templates and expressions see it (money as Decimal)."""
    return {
        "id": cart.cart_id,
        "items": list((cart.items or {}).get("items", [])),
        "currency": cart.currency,
        "total": cart.total if cart.total is not None else Decimal(0),
        "checkout_url": cart.checkout_url,
    }


def _apply_triggers(
    session: Session,
    workflows: WorkflowSet,
    contact: Contact,
    event: AnyEvent,
    facts: _Facts,
    now: datetime,
    result: IngestResult,
) -> None:
    for workflow in workflows.triggered_by(event.type):
        if not workflow.enabled:
            continue
        key = enrollment_key(workflow, event, contact)
        if key is None:
            continue
        if workflow.trigger.key == "contact" and repo.active_enrollments(
            session, workflow.id, contact_id=contact.id
        ):
            continue  # one running enrollment per contact (e.g. one browse reminder at a time)
        if workflow.trigger.filter is not None:
            try:
                matched = evaluate(workflow.trigger.filter, _context(contact, event, facts.cart))
            except ValidationError as exc:
                log.warning("workflow=%s filter failed: %s", workflow.id, exc)
                continue
            if not matched:
                continue
        existing = repo.get_enrollment(session, workflow.id, key, for_update=True)
        if existing is not None:
            if (
                existing.status == EnrollmentStatus.ACTIVE
                and event.occurred_at > existing.started_at
            ):
                _refresh(session, workflow, existing, event, contact, now)
                result.refreshed.append(workflow.id)
            continue
        if workflow.trigger.reenter_after is not None and repo.recent_enrollment_exists(
            session, workflow.id, contact.id, event.occurred_at - workflow.trigger.reenter_after
        ):
            continue
        if _start(session, workflows, workflow, contact, key, event, facts, now):
            result.started.append(workflow.id)


def _start(
    session: Session,
    workflows: WorkflowSet,
    workflow: Workflow,
    contact: Contact,
    key: str,
    event: AnyEvent,
    facts: _Facts,
    now: datetime,
) -> bool:
    # Every time, not cached per process: a cache could outlive a rolled-back transaction
    # (or belong to another database) and leave an enrollment pointing at a lost version.
    repo.remember_workflow_version(
        session, workflow.id, workflow.version, workflows.sources[workflow.id], now
    )
    enrollment = repo.add_enrollment(
        session,
        Enrollment(
            workflow_id=workflow.id,
            workflow_version=workflow.version,
            key=key,
            contact_id=contact.id,
            status=EnrollmentStatus.ACTIVE,
            started_at=event.occurred_at,
            context={
                "event": json.loads(event.model_dump_json()),
                # Held-out enrollments run in the shadow: exits and conversions are tracked
                # like any other, but no email (and no discount code) goes out.
                "holdout": in_holdout(
                    contact.external_id or contact.email or str(contact.id),
                    workflow.id,
                    workflow.holdout_percent,
                ),
            },
        ),
    )
    repo.add_deliveries(
        session,
        [
            Delivery(
                enrollment_id=enrollment.id,
                contact_id=contact.id,
                workflow_id=workflow.id,
                step_id=step.id,
                template=step.template,
                status=DeliveryStatus.SCHEDULED,
                due_at=due,
                planned_at=due,
                attempts=0,
                created_at=now,
                updated_at=now,
            )
            for step, due in plan_due_times(
                workflow.steps, event.occurred_at, _date_facts(event), contact.timezone
            )
        ],
    )
    return True


def _refresh(
    session: Session,
    workflow: Workflow,
    enrollment: Enrollment,
    event: AnyEvent,
    contact: Contact,
    now: datetime,
) -> None:
    """The cart changed again: pending reminders count from the newest activity."""
    enrollment.started_at = event.occurred_at
    planned = plan_due_times(
        workflow.steps, event.occurred_at, _date_facts(event), contact.timezone
    )
    repo.reschedule_pending(session, enrollment.id, {s.id: when for s, when in planned}, now)

