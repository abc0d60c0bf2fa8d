"""One ingest transaction: what it prefetched, indexed, and changed as its events apply.

Everything the batch may read is fetched up front (known event ids, contacts, carts,
subscriptions, orders, enrollments); every write is flushed together at the end, one
statement per kind of row, however many events the batch holds.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from remarket_mailer.db import catalog as catalog_db
from remarket_mailer.db import commerce as commerce_db
from remarket_mailer.db import contacts as contacts_db
from remarket_mailer.db import deliveries as deliveries_db
from remarket_mailer.db import enrollments as enrollments_db
from remarket_mailer.db import interests as interests_db
from remarket_mailer.db import segment_members as members_db
from remarket_mailer.db.commerce import CartRow
from remarket_mailer.db.contacts import ContactRow
from remarket_mailer.db.enrollments import EnrollmentRow
from remarket_mailer.db.interests import Sighting
from remarket_mailer.db.session import Session
from remarket_mailer.domain.keys import base_key, key_covers
from remarket_mailer.domain.recommend import COVIEW_WINDOW
from remarket_mailer.domain.states import EnrollmentStatus
from remarket_mailer.domain.workflow import Workflow
from remarket_mailer.schemas import (
    AnyEvent,
    IncomingEvent,
    OrderPlaced,
    ProductDeleted,
    ProductUpserted,
    ProductViewed,
    is_catalog_event,
)
from remarket_mailer.services.experiments import winners_for
from remarket_mailer.services.ingest.enrich import product_ids
from remarket_mailer.services.ingest.interest import seen_product_ids
from remarket_mailer.services.segments import update_members
from remarket_mailer.workflows.loader import WorkflowSet
from remarket_mailer.workflows.matching import enrollment_key, exit_key

Prepared = tuple[IncomingEvent, dict[str, Any], str]
"""An event, its body as sent, and the hash of that body."""


@dataclass
class IngestResult:
    event_id: str
    duplicate: bool = False
    started: list[str] = field(default_factory=list)
    """Workflow ids in which this event started an enrollment."""
    refreshed: list[str] = field(default_factory=list)
    exited: int = 0


class Batch:
    """The state of one ingest transaction: prefetched rows, indexed, updated as it goes.

    It is also the ``workflows.matching.Enrollments`` that trigger and exit matching read."""

    def __init__(
        self, session: Session, workflows: WorkflowSet, now: datetime, items: list[Prepared]
    ) -> None:
        self.session = session
        self.workflows = workflows
        self.now = now
        self.items = items
        self.seen: dict[str, str] = commerce_db.event_hashes(
            session, (e.event_id for e, _, _ in items)
        )
        self.stored_versions: set[tuple[str, str]] = set()
        self.skip_enrollments: list[tuple[int, str]] = []
        self.reschedules: list[dict[str, Any]] = []
        # Events and new deliveries are plain rows, inserted at the end in one executemany
        # each: building and flushing ORM objects for them was most of a batch's time.
        self.new_events: list[dict[str, Any]] = []
        # New carts and enrollments are objects the session does not track: they are
        # written as plain INSERTs at the end, which costs half an ORM flush.
        self.new_carts: list[CartRow] = []
        self.new_deliveries: dict[int, tuple[EnrollmentRow, list[dict[str, Any]]]] = {}
        # The catalog's changes, and the products of each new order (bought together).
        self.product_rows: list[dict[str, Any]] = []
        self.deleted_products: dict[str, datetime] = {}
        self.baskets: list[list[str]] = []
        # What contacts saw of products (back in stock, price drops), and what they bought.
        self.sightings: dict[tuple[int, str], Sighting] = {}
        self.bought: dict[tuple[int, str], datetime] = {}
        self.coviews: Counter[tuple[str, str]] = Counter()
        self._winners: dict[str, dict[str, str]] = {}
        events = [e for e, _, _ in items if not is_catalog_event(e)]
        wanted = set().union(*map(product_ids, events), *map(seen_product_ids, events))
        self.products = catalog_db.products_by_id(session, wanted)
        self._load_contacts(events)
        cart_ids = {c for e in events if (c := getattr(e, "cart_id", None))}
        self.carts = commerce_db.carts_for_update(session, cart_ids)
        sub_ids = {s for e in events if (s := getattr(e, "subscription_id", None))}
        self.subscriptions = commerce_db.subscriptions_by_id(session, sub_ids)
        order_ids = {e.order_id for e in events if isinstance(e, OrderPlaced)}
        self.known_orders = set(commerce_db.orders_by_id(session, order_ids))
        self._load_enrollments(events)
        # What ``in_segment(...)`` answers in filters: the members as stored before the batch.
        self.memberships: dict[int, frozenset[str]] = (
            members_db.memberships(session, {c.id for c in self.touched_contacts().values()})
            if workflows.uses_segments()
            else {}
        )
        self._load_recent_views(events)

    # -- contacts --------------------------------------------------------------------------

    def _load_contacts(self, events: list[AnyEvent]) -> None:
        refs = [e.contact for e in events]
        found = contacts_db.contacts_by_refs(
            self.session,
            (r.external_id for r in refs if r.external_id),
            (r.email for r in refs if r.email),
        )
        self.by_external = {c.external_id: c for c in found if c.external_id}
        self.by_email = {c.email: c for c in found if c.email}
        new: list[ContactRow] = []
        for ref in refs:
            if self._find(ref.external_id, ref.email) is None:
                contact = contacts_db.new_contact(ref.external_id, ref.email, self.now)
                new.append(contact)
                self._index(contact)
        # One INSERT for every new contact of the batch, at once: ids for what follows.
        contacts_db.add_contacts(self.session, new)

    def touched_contacts(self) -> dict[int, ContactRow]:
        """The contacts the batch's events name (new ones included), by id."""
        return {c.id: c for c in [*self.by_email.values(), *self.by_external.values()]}

    def _find(self, external_id: str | None, email: str | None) -> ContactRow | None:
        if external_id is not None and external_id in self.by_external:
            return self.by_external[external_id]
        if email is not None:
            return self.by_email.get(email)
        return None

    def _index(self, contact: ContactRow) -> None:
        if contact.external_id:
            self.by_external[contact.external_id] = contact
        if contact.email:
            self.by_email[contact.email] = contact

    def contact_for(self, event: AnyEvent) -> ContactRow:
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

    def _load_recent_views(self, events: list[AnyEvent]) -> None:
        """What the batch's viewers looked at lately: a view pairs with those (viewed
        together). One query, and none for a batch without views."""
        views = [e for e in events if isinstance(e, ProductViewed)]
        viewers = {c.id for e in views if (c := self._find(e.contact.external_id, e.contact.email))}
        since = min((e.occurred_at for e in views), default=self.now) - COVIEW_WINDOW
        self.recent_views = interests_db.recent_interests(self.session, viewers, since)

    # -- enrollments -----------------------------------------------------------------------

    def _load_enrollments(self, events: list[AnyEvent]) -> None:
        keys: set[tuple[str, str]] = set()
        prefixes: set[tuple[str, str]] = set()
        by_contact: set[tuple[str, int]] = set()
        reenter: set[str] = set()
        for event in events:
            contact = self._find(event.contact.external_id, event.contact.email)
            assert contact is not None
            for workflow in self.workflows.triggered_by(event.type):
                if workflow.trigger.key == "contact":
                    by_contact.add((workflow.id, contact.id))
                elif (key := enrollment_key(workflow, event, contact.id)) is not None:
                    keys.add((workflow.id, key))
                if workflow.trigger.reenter_after is not None:
                    reenter.add(workflow.id)
            for workflow, rule in self.workflows.exited_by(event.type):
                if rule.match == "contact":
                    by_contact.add((workflow.id, contact.id))
                elif (value := exit_key(workflow, event)) is not None:
                    keys.add((workflow.id, value))
                    if workflow.trigger.key == "subscription_id":
                        prefixes.add((workflow.id, value))
        self.enrollments: dict[tuple[str, str], EnrollmentRow] = {}
        # Subscription keys carry the renewal date ("sub_1@2026-12-01"); exits name the
        # subscription only, so enrollments are also found by their base key.
        self.by_base_key: dict[tuple[str, str], list[EnrollmentRow]] = {}
        self.active_by_contact: dict[tuple[str, int], list[EnrollmentRow]] = {}
        for enrollment in enrollments_db.enrollments_for(self.session, keys, prefixes, by_contact):
            self.remember(enrollment)
        contacts = (
            {c for _, c in by_contact}
            | {c.id for c in self.by_email.values()}
            | {c.id for c in self.by_external.values()}
        )
        self.latest_start = enrollments_db.latest_starts(self.session, reenter, contacts)

    def remember(self, enrollment: EnrollmentRow) -> None:
        self.enrollments[(enrollment.workflow_id, enrollment.key)] = enrollment
        base = base_key(enrollment.key)
        self.by_base_key.setdefault((enrollment.workflow_id, base), []).append(enrollment)
        if enrollment.status == EnrollmentStatus.ACTIVE:
            group = self.active_by_contact.setdefault(
                (enrollment.workflow_id, enrollment.contact_id), []
            )
            if enrollment not in group:
                group.append(enrollment)

    def by_key(self, workflow_id: str, key: str) -> EnrollmentRow | None:
        return self.enrollments.get((workflow_id, key))

    def active(self, workflow_id: str, contact_id: int) -> list[EnrollmentRow]:
        group = self.active_by_contact.get((workflow_id, contact_id), [])
        return [e for e in group if e.status == EnrollmentStatus.ACTIVE]

    def active_by_key(self, workflow_id: str, key: str) -> list[EnrollmentRow]:
        found = self.by_base_key.get((workflow_id, base_key(key)), [])
        return [e for e in found if key_covers(key, e.key) and e.status == EnrollmentStatus.ACTIVE]

    def last_start(self, workflow_id: str, contact_id: int) -> datetime | None:
        return self.latest_start.get((workflow_id, contact_id))

    # -- writes ---------------------------------------------------------------------------

    def record_event(
        self, event: IncomingEvent, raw: dict[str, Any], digest: str, contact_id: int | None
    ) -> None:
        self.new_events.append(
            commerce_db.event_row(
                event_id=event.event_id,
                type=event.type,
                occurred_at=event.occurred_at,
                received_at=self.now,
                contact_id=contact_id,
                body_hash=digest,
                payload=json.loads(json.dumps(raw, default=str)),
            )
        )

    def winners_of(self, workflow: Workflow) -> dict[str, str]:
        """The workflow's decided A/B tests, read once per batch."""
        found = self._winners.get(workflow.id)
        if found is None:
            found = self._winners[workflow.id] = winners_for(self.session, workflow)
        return found

    def change_catalog(self, event: ProductUpserted | ProductDeleted) -> None:
        """Kept for the end of the batch: one statement for all its product changes."""
        if isinstance(event, ProductDeleted):
            seen = self.deleted_products.get(event.product_id, event.occurred_at)
            self.deleted_products[event.product_id] = max(event.occurred_at, seen)
            self.products.pop(event.product_id, None)
            return
        row = event.model_dump(mode="json", exclude={"event_id", "occurred_at", "type"})
        row["price"], row["compare_at_price"] = event.price, event.compare_at_price
        row["updated_at"], row["deleted_at"] = event.occurred_at, None
        self.product_rows.append(row)
        # A later event of this batch naming the product sees it (the rows go in at the end).
        self.products[event.product_id] = catalog_db.ProductFacts(
            event.product_id,
            event.title,
            row["url"],
            row["image_url"],
            event.price,
            event.compare_at_price,
            event.currency,
            event.category,
            event.available,
        )

    def exit(self, enrollments: tuple[EnrollmentRow, ...], reason: str) -> int:
        for enrollment in enrollments:
            enrollment.status = EnrollmentStatus.EXITED
            enrollment.exit_reason = reason
            enrollment.ended_at = self.now
            pending = self.new_deliveries.get(id(enrollment))
            if pending is not None:
                deliveries_db.skip_unwritten(pending[1], "exited", reason)
            else:
                self.skip_enrollments.append((enrollment.id, reason))
        return len(enrollments)

    def finish(self) -> None:
        """Every write of the batch: the ORM flush (changed contacts and facts, consents,
        orders, subscriptions), new carts and enrollments (which gets the enrollments their
        ids), events and deliveries, one statement each, then the updates - one statement
        each, for the whole batch."""
        self.session.flush()
        commerce_db.insert_carts(self.session, self.new_carts)
        commerce_db.insert_events(self.session, self.new_events)
        enrollments_db.insert_enrollments(self.session, self.new_deliveries.values())
        catalog_db.upsert_products(self.session, self.product_rows)
        catalog_db.delete_products(self.session, self.deleted_products)
        catalog_db.count_orders(self.session, self.baskets)
        interests_db.record_interests(self.session, self.sightings.values())
        interests_db.forget_bought(self.session, self.bought)
        interests_db.count_coviews(self.session, self.coviews)
        in_stock = [row["product_id"] for row in self.product_rows if row["available"]]
        interests_db.note_changes(self.session, in_stock, self.now)
        by_reason: dict[str, list[int]] = {}
        for enrollment_id, reason in self.skip_enrollments:
            by_reason.setdefault(reason, []).append(enrollment_id)
        for reason, ids in by_reason.items():
            deliveries_db.skip_pending_for_enrollments(
                self.session, ids, "exited", reason, self.now
            )
        deliveries_db.reschedule_many(self.session, self.reschedules, self.now)
        if self.workflows.segments:
            # Last: the batch's orders, views and consents are written, so they count.
            update_members(self.session, self.workflows, self.touched_contacts(), self.now)
