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
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from remarket_mailer import metrics
from remarket_mailer.db import repository as repo
from remarket_mailer.db.models import (
    Cart,
    Consent,
    Contact,
    Delivery,
    Enrollment,
    Event,
    Order,
    Subscription,
)
from remarket_mailer.domain.clock import Clock
from remarket_mailer.domain.policy import in_holdout
from remarket_mailer.domain.states import DeliveryStatus, EnrollmentStatus
from remarket_mailer.domain.workflow import Workflow, plan_due_times
from remarket_mailer.errors import ConflictError, UnavailableError, ValidationError
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
from remarket_mailer.workflows.context import workflow_context
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


IngestOutcome = IngestResult | ConflictError | ValidationError
"""Per event: applied (or a duplicate), a conflicting replay, or an event that could not be
applied (nothing of it was written)."""


def ingest_event(
    uow: UnitOfWork,
    workflows: WorkflowSet,
    clock: Clock,
    event: AnyEvent,
    raw: dict[str, Any],
) -> IngestResult:
    """Record ``event`` and apply it. Raises ConflictError when the event_id was used before
    with a different body, ValidationError when the event cannot be applied, UnavailableError
    when the database cannot be reached."""
    (result,) = ingest_batch(uow, workflows, clock, [(event, raw)])
    if isinstance(result, ConflictError | ValidationError):
        raise result
    return result


def ingest_batch(
    uow: UnitOfWork,
    workflows: WorkflowSet,
    clock: Clock,
    items: Sequence[tuple[AnyEvent, dict[str, Any]]],
) -> list[IngestOutcome]:
    """Ingest events in order, in one transaction: a batch of 1,000 costs one commit and a
    fixed number of queries, not a dozen round trips per event.

    Everything the batch may read is fetched up front (known event ids, contacts, carts,
    enrollments); every write is flushed together. A conflicting replay is reported in its
    slot and changes nothing; a race with a concurrent batch (the same new contact, cart or
    enrollment) rolls the whole batch back and runs it again.

    An event that fails in a way validation did not foresee (a value the database refuses, a
    bug) must not take the others down with it: the batch is split in halves until the
    failing events stand alone, and each of those is reported as a ValidationError in its
    slot. ``UnavailableError`` (the database is down) is raised: no event can be applied.
    """
    prepared = [(event, raw, body_hash(raw)) for event, raw in items]
    return _ingest_isolating(uow, workflows, clock, prepared)


def _ingest_isolating(
    uow: UnitOfWork,
    workflows: WorkflowSet,
    clock: Clock,
    prepared: list[tuple[AnyEvent, dict[str, Any], str]],
) -> list[IngestOutcome]:
    try:
        return list(_ingest_prepared(uow, workflows, clock, prepared))
    except UnavailableError:
        raise
    except Exception as exc:
        if len(prepared) == 1:
            event = prepared[0][0]
            log.exception("event %s (%s) could not be applied", event.event_id, event.type)
            metrics.EVENTS.labels(event.type, "failed").inc()
            return [ValidationError(_not_applied(exc), field="(event)")]
        middle = len(prepared) // 2
        # Events are applied in order: the first half goes first, as it would have.
        first = _ingest_isolating(uow, workflows, clock, prepared[:middle])
        return first + _ingest_isolating(uow, workflows, clock, prepared[middle:])


def _not_applied(exc: Exception) -> str:
    if isinstance(exc, DataError):
        # The database refused a value (too long, out of range): say so, not which SQL.
        return "the event could not be stored: a value is out of range for its field"
    return "the event could not be applied; the error was logged"


def _ingest_prepared(
    uow: UnitOfWork,
    workflows: WorkflowSet,
    clock: Clock,
    prepared: list[tuple[AnyEvent, dict[str, Any], str]],
) -> list[IngestResult | ConflictError]:
    for attempt in range(_ATTEMPTS):
        try:
            with uow() as session:
                batch = _Batch(session, workflows, clock.now(), prepared)
                results = batch.run()
            workflows.stored |= batch.stored_versions  # committed now
            for (event, _, _), result in zip(prepared, results, strict=True):
                outcome = (
                    "conflict"
                    if isinstance(result, ConflictError)
                    else "duplicate"
                    if result.duplicate
                    else "accepted"
                )
                metrics.EVENTS.labels(event.type, outcome).inc()
            return results
        except IntegrityError:
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


class _Batch:
    """The state of one ingest transaction: prefetched rows, indexed, updated as it goes."""

    def __init__(
        self,
        session: Session,
        workflows: WorkflowSet,
        now: datetime,
        items: list[tuple[AnyEvent, dict[str, Any], str]],
    ) -> None:
        self.session = session
        self.workflows = workflows
        self.now = now
        self.items = items
        self.seen: dict[str, str] = repo.event_hashes(session, (e.event_id for e, _, _ in items))
        self.stored_versions: set[tuple[str, str]] = set()
        self.skip_enrollments: list[tuple[int, str]] = []
        self.reschedules: list[dict[str, Any]] = []
        # Events and new deliveries are plain rows, inserted at the end in one executemany
        # each: building and flushing ORM objects for them was most of a batch's time.
        self.new_events: list[dict[str, Any]] = []
        # New carts and enrollments are objects the session does not track: they are
        # written as plain INSERTs at the end, which costs half an ORM flush.
        self.new_carts: list[Cart] = []
        self.new_deliveries: dict[int, tuple[Enrollment, list[dict[str, Any]]]] = {}
        self._load_contacts()
        events = [e for e, _, _ in items]
        cart_ids = {c for e in events if (c := getattr(e, "cart_id", None))}
        self.carts = repo.carts_for_update(session, cart_ids)
        sub_ids = {s for e in events if (s := getattr(e, "subscription_id", None))}
        self.subscriptions = repo.subscriptions_by_id(session, sub_ids)
        order_ids = {e.order_id for e in events if isinstance(e, OrderPlaced)}
        self.known_orders = set(repo.orders_by_id(session, order_ids))
        self._load_enrollments(events)

    # -- prefetch ------------------------------------------------------------------------

    def _load_contacts(self) -> None:
        refs = [e.contact for e, _, _ in self.items]
        found = repo.contacts_by_refs(
            self.session,
            (r.external_id for r in refs if r.external_id),
            (r.email for r in refs if r.email),
        )
        self.by_external = {c.external_id: c for c in found if c.external_id}
        self.by_email = {c.email: c for c in found if c.email}
        new: list[Contact] = []
        for ref in refs:
            if self._find(ref.external_id, ref.email) is None:
                contact = Contact(
                    external_id=ref.external_id,
                    email=ref.email,
                    first_name=None,
                    last_name=None,
                    locale=None,
                    timezone=None,
                    attributes={},
                    first_order_at=None,
                    profile_updated_at=None,
                    created_at=self.now,
                    updated_at=self.now,
                )
                new.append(contact)
                self._index(contact)
        # One INSERT for every new contact of the batch, at once: ids for what follows. The
        # session then tracks them like loaded contacts (every column is set).
        repo.insert_new(self.session, Contact, new)
        repo.track(self.session, new)

    def _find(self, external_id: str | None, email: str | None) -> Contact | None:
        if external_id is not None and external_id in self.by_external:
            return self.by_external[external_id]
        if email is not None:
            return self.by_email.get(email)
        return None

    def _index(self, contact: Contact) -> None:
        if contact.external_id:
            self.by_external[contact.external_id] = contact
        if contact.email:
            self.by_email[contact.email] = contact

    def contact_for(self, event: AnyEvent) -> Contact:
        ref = event.contact
        contact = self._find(ref.external_id, ref.email)
        assert contact is not None  # every reference was resolved or created up front
        if contact.external_id is None and ref.external_id is not None:
            contact.external_id = ref.external_id
            self._index(contact)
        if ref.email is not None and contact.email != ref.email and ref.email not in self.by_email:
            contact.email = ref.email
            self._index(contact)
        return contact

    def _load_enrollments(self, events: list[AnyEvent]) -> None:
        keys: set[tuple[str, str]] = set()
        prefixes: set[tuple[str, str]] = set()
        by_contact: set[tuple[str, int]] = set()
        reenter: set[str] = set()
        for event, (_, _, _) in zip(events, self.items, strict=True):
            contact = self._find(event.contact.external_id, event.contact.email)
            assert contact is not None
            for workflow in self.workflows.triggered_by(event.type):
                if workflow.trigger.key == "contact":
                    by_contact.add((workflow.id, contact.id))
                else:
                    key = enrollment_key(workflow, event, contact)
                    if key is not None:
                        keys.add((workflow.id, key))
                if workflow.trigger.reenter_after is not None:
                    reenter.add(workflow.id)
            for workflow, match in self.workflows.exited_by(event.type):
                if match == "contact":
                    by_contact.add((workflow.id, contact.id))
                elif (value := _exit_key(workflow.trigger.key, event)) is not None:
                    keys.add((workflow.id, value))
                    if workflow.trigger.key == "subscription_id":
                        prefixes.add((workflow.id, value))
        self.enrollments: dict[tuple[str, str], Enrollment] = {}
        # Subscription keys carry the renewal date ("sub_1@2026-12-01"); exits name the
        # subscription only, so enrollments are also found by the part before '@'.
        self.by_base_key: dict[tuple[str, str], list[Enrollment]] = {}
        self.active_by_contact: dict[tuple[str, int], list[Enrollment]] = {}
        for enrollment in repo.enrollments_for(self.session, keys, prefixes, by_contact):
            self._remember(enrollment)
        contacts = (
            {c for _, c in by_contact}
            | {c.id for c in self.by_email.values()}
            | {c.id for c in self.by_external.values()}
        )
        self.latest_start = repo.latest_starts(self.session, reenter, contacts)

    def _remember(self, enrollment: Enrollment) -> None:
        self.enrollments[(enrollment.workflow_id, enrollment.key)] = enrollment
        base = enrollment.key.partition("@")[0]
        self.by_base_key.setdefault((enrollment.workflow_id, base), []).append(enrollment)
        if enrollment.status == EnrollmentStatus.ACTIVE:
            group = self.active_by_contact.setdefault(
                (enrollment.workflow_id, enrollment.contact_id), []
            )
            if enrollment not in group:
                group.append(enrollment)

    def active(self, workflow_id: str, contact_id: int) -> list[Enrollment]:
        group = self.active_by_contact.get((workflow_id, contact_id), [])
        return [e for e in group if e.status == EnrollmentStatus.ACTIVE]

    def active_by_key(self, workflow_id: str, key: str) -> list[Enrollment]:
        found = self.by_base_key.get((workflow_id, key.partition("@")[0]), [])
        return [
            e
            for e in found
            if (e.key == key or e.key.startswith(key + "@")) and e.status == EnrollmentStatus.ACTIVE
        ]

    # -- the events, in order -----------------------------------------------------------

    def run(self) -> list[IngestResult | ConflictError]:
        results: list[IngestResult | ConflictError] = []
        for event, raw, digest in self.items:
            known = self.seen.get(event.event_id)
            if known is not None:
                if known != digest:
                    results.append(
                        ConflictError(
                            f"event_id {event.event_id!r} was already used for a different "
                            "event body"
                        )
                    )
                else:
                    results.append(IngestResult(event.event_id, duplicate=True))
                continue
            self.seen[event.event_id] = digest
            results.append(self.apply(event, raw, digest))
        self.finish()
        return results

    def apply(self, event: AnyEvent, raw: dict[str, Any], digest: str) -> IngestResult:
        result = IngestResult(event.event_id)
        contact = self.contact_for(event)
        self.new_events.append(
            {
                "event_id": event.event_id,
                "type": event.type,
                "occurred_at": event.occurred_at,
                "received_at": self.now,
                "contact_id": contact.id,
                "body_hash": digest,
                "payload": json.loads(json.dumps(raw, default=str)),
            }
        )
        facts = _apply_facts(self, contact, event)
        result.exited = _apply_exits(self, contact, event)
        if facts.may_trigger:
            _apply_triggers(self, contact, event, facts, result)
        return result

    def exit(self, enrollments: list[Enrollment], reason: str) -> int:
        for enrollment in enrollments:
            enrollment.status = EnrollmentStatus.EXITED
            enrollment.exit_reason = reason
            enrollment.ended_at = self.now
            pending = self.new_deliveries.get(id(enrollment))
            if pending is not None:
                for delivery in pending[1]:
                    if delivery["status"] == DeliveryStatus.SCHEDULED:
                        delivery["status"] = DeliveryStatus.SKIPPED
                        delivery["reason"], delivery["detail"] = "exited", reason
            else:
                self.skip_enrollments.append((enrollment.id, reason))
        return len(enrollments)

    def finish(self) -> None:
        """Every write of the batch: the ORM flush (changed contacts and facts, consents,
        orders, subscriptions), new carts and enrollments (which gets the enrollments their
        ids), events and deliveries, one statement each, then the updates - one statement
        each, for the whole batch."""
        self.session.flush()
        repo.insert_new(self.session, Cart, self.new_carts)
        repo.insert_new(self.session, Enrollment, [e for e, _ in self.new_deliveries.values()])
        deliveries: list[dict[str, Any]] = []
        for enrollment, rows in self.new_deliveries.values():
            for row in rows:
                row["enrollment_id"] = enrollment.id
                deliveries.append(row)
        repo.insert_rows(self.session, Event, self.new_events)
        repo.insert_rows(self.session, Delivery, deliveries)
        by_reason: dict[str, list[int]] = {}
        for enrollment_id, reason in self.skip_enrollments:
            by_reason.setdefault(reason, []).append(enrollment_id)
        for reason, ids in by_reason.items():
            repo.skip_pending_for_enrollments(self.session, ids, "exited", reason, self.now)
        repo.reschedule_many(self.session, self.reschedules, self.now)


@dataclass
class _Facts:
    may_trigger: bool = True
    cart: Cart | None = None


def _items(items: Any) -> dict[str, Any]:
    return {"items": [json.loads(item.model_dump_json()) for item in items]}


def _apply_facts(batch: _Batch, contact: Contact, event: AnyEvent) -> _Facts:
    """Upsert contact/cart/order/subscription facts; the newest occurred_at wins."""
    session, now = batch.session, batch.now
    facts = _Facts()
    at = event.occurred_at
    if isinstance(event, ContactUpserted):
        # The newest occurred_at wins, as for carts: an older event (a late webhook) only
        # fills fields that are still empty. Stamps ahead of our clock count as now.
        newer = contact.profile_updated_at is None or at >= contact.profile_updated_at
        for name in ("first_name", "last_name", "locale", "timezone"):
            value = getattr(event, name)
            if value is not None and (newer or getattr(contact, name) is None):
                setattr(contact, name, value)
        if event.attributes:
            older, newest = (
                (contact.attributes, event.attributes)
                if newer
                else (event.attributes, contact.attributes)
            )
            contact.attributes = {**older, **newest}
        if newer:
            contact.profile_updated_at = min(at, now)
        contact.updated_at = now
    elif isinstance(event, ConsentChanged):
        session.add(
            Consent(
                contact_id=contact.id,
                topic=event.topic,
                status=event.status,
                source=event.source,
                evidence=event.evidence,
                occurred_at=min(at, now),  # a stamp ahead of us counts as now (domain.consent)
                recorded_at=now,
            )
        )
    elif isinstance(event, ContactUnsubscribed):
        if event.topic is None:
            if contact.email:
                repo.suppress(session, contact.email, "unsubscribed", event.source, now)
            repo.skip_pending_for_contact(session, contact.id, "suppressed", "unsubscribed", now)
        else:
            session.add(
                Consent(
                    contact_id=contact.id,
                    topic=event.topic,
                    status="withdrawn",
                    source=event.source or "contact.unsubscribed",
                    occurred_at=min(at, now),
                    recorded_at=now,
                )
            )
    elif isinstance(event, CartUpdated | CheckoutStarted):
        facts.cart = _upsert_cart(batch, contact, event)
        facts.may_trigger = facts.cart.ordered_at is None and facts.cart.updated_at == at
    elif isinstance(event, CartEmptied):
        cart = batch.carts.get(event.cart_id)
        if cart is not None and (cart.emptied_at is None or cart.emptied_at < at):
            cart.emptied_at = at
    elif isinstance(event, OrderPlaced):
        _record_order(batch, contact, event)
    elif isinstance(event, SubscriptionUpserted | SubscriptionRenewed | SubscriptionCancelled):
        _upsert_subscription(batch, contact, event)
    return facts


def _cart(batch: _Batch, cart_id: str, contact: Contact) -> Cart:
    cart = batch.carts.get(cart_id)
    if cart is None:
        cart = Cart(cart_id=cart_id, contact_id=contact.id, items={})
        batch.new_carts.append(cart)
        batch.carts[cart_id] = cart
    return cart


def _upsert_cart(batch: _Batch, contact: Contact, event: CartUpdated | CheckoutStarted) -> Cart:
    cart = _cart(batch, event.cart_id, contact)
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


def _record_order(batch: _Batch, contact: Contact, event: OrderPlaced) -> None:
    session = batch.session
    if event.order_id not in batch.known_orders:
        batch.known_orders.add(event.order_id)
        session.add(
            Order(
                order_id=event.order_id,
                contact_id=contact.id,
                cart_id=event.cart_id,
                currency=event.currency,
                total=event.total,
                items=_items(event.items),
                discount_codes={"codes": list(event.discount_codes)},
                placed_at=event.occurred_at,
            )
        )
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
        # The order can arrive before the cart event it converts: remember it, so the late
        # cart.updated does not start reminders for a cart that was already bought.
        cart = _cart(batch, event.cart_id, contact)
        if cart.ordered_at is None or event.occurred_at < cart.ordered_at:
            cart.ordered_at = event.occurred_at
            cart.order_id = event.order_id


def _upsert_subscription(
    batch: _Batch,
    contact: Contact,
    event: SubscriptionUpserted | SubscriptionRenewed | SubscriptionCancelled,
) -> None:
    sub = batch.subscriptions.get(event.subscription_id)
    if sub is None:
        sub = Subscription(subscription_id=event.subscription_id, contact_id=contact.id)
        batch.session.add(sub)
        batch.subscriptions[event.subscription_id] = sub
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


def _apply_exits(batch: _Batch, contact: Contact, event: AnyEvent) -> int:
    ended = 0
    for workflow, match in batch.workflows.exited_by(event.type):
        if match == "key":
            key = _exit_key(workflow.trigger.key, event)
            if key is None:
                continue
            found = batch.active_by_key(workflow.id, key)
        else:
            # Only enrollments that began before this event: an order placed before a new cart
            # was abandoned says nothing about that cart.
            found = [
                e
                for e in batch.active(workflow.id, contact.id)
                if e.started_at <= event.occurred_at
            ]
        if found:
            same = "same " + workflow.trigger.key if match == "key" else "contact"
            ended += batch.exit(found, f"{event.type} ({same})")
    return ended


def _apply_triggers(
    batch: _Batch,
    contact: Contact,
    event: AnyEvent,
    facts: _Facts,
    result: IngestResult,
) -> None:
    for workflow in batch.workflows.triggered_by(event.type):
        if not workflow.enabled:
            continue
        key = enrollment_key(workflow, event, contact)
        if key is None:
            continue
        if workflow.trigger.key == "contact" and batch.active(workflow.id, contact.id):
            continue  # one running enrollment per contact (e.g. one browse reminder at a time)
        if workflow.trigger.filter is not None:
            try:
                matched = evaluate(
                    workflow.trigger.filter,
                    workflow_context(contact, json.loads(event.model_dump_json()), facts.cart),
                )
            except ValidationError as exc:  # any failure of the marketer's expression
                log.warning("workflow=%s filter failed, not matched: %s", workflow.id, exc)
                metrics.EXPRESSION_ERRORS.labels(workflow.id, "trigger.filter").inc()
                continue
            if not matched:
                continue
        existing = batch.enrollments.get((workflow.id, key))
        if existing is not None:
            if (
                existing.status == EnrollmentStatus.ACTIVE
                and event.occurred_at > existing.started_at
            ):
                _refresh(batch, workflow, existing, event, contact)
                result.refreshed.append(workflow.id)
            continue
        reenter = workflow.trigger.reenter_after
        last = batch.latest_start.get((workflow.id, contact.id))
        if reenter is not None and last is not None and last >= event.occurred_at - reenter:
            continue
        _start(batch, workflow, contact, key, event)
        result.started.append(workflow.id)


def _start(batch: _Batch, workflow: Workflow, contact: Contact, key: str, event: AnyEvent) -> None:
    session, now = batch.session, batch.now
    version = (workflow.id, workflow.version)
    if version not in batch.stored_versions and version not in batch.workflows.stored:
        repo.remember_workflow_version(
            session, workflow.id, workflow.version, batch.workflows.sources[workflow.id], now
        )
        batch.stored_versions.add((workflow.id, workflow.version))
    enrollment = Enrollment(
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
    )
    contact_key = contact.external_id or contact.email or str(contact.id)
    deliveries = [
        {
            "contact_id": contact.id,
            "workflow_id": workflow.id,
            "step_id": step.id,
            "variant": variant,
            "template": template,
            "status": DeliveryStatus.SCHEDULED,
            "due_at": due,
            "planned_at": due,
            "attempts": 0,
            "reason": None,
            "detail": None,
            "created_at": now,
            "updated_at": now,
        }
        for step, due in plan_due_times(
            workflow.steps, event.occurred_at, _date_facts(event), contact.timezone
        )
        for variant, template in [step.pick(contact_key, workflow.id)]
    ]
    batch.new_deliveries[id(enrollment)] = (enrollment, deliveries)
    batch.latest_start[(workflow.id, contact.id)] = event.occurred_at
    batch._remember(enrollment)


def _refresh(
    batch: _Batch,
    workflow: Workflow,
    enrollment: Enrollment,
    event: AnyEvent,
    contact: Contact,
) -> None:
    """The cart changed again: pending reminders count from the newest activity."""
    enrollment.started_at = event.occurred_at
    planned = plan_due_times(
        workflow.steps, event.occurred_at, _date_facts(event), contact.timezone
    )
    pending = batch.new_deliveries.get(id(enrollment))
    if pending is not None:
        due = {step.id: when for step, when in planned}
        for delivery in pending[1]:
            if delivery["status"] == DeliveryStatus.SCHEDULED and delivery["step_id"] in due:
                delivery["due_at"] = delivery["planned_at"] = due[delivery["step_id"]]
        return
    batch.reschedules.extend(
        {"enrollment_id": enrollment.id, "step_id": step.id, "due": when} for step, when in planned
    )
