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
from typing import Any

from remarket_mailer import metrics
from remarket_mailer.db.contacts import ContactRow
from remarket_mailer.db.session import RowConflict, ValueRefused
from remarket_mailer.domain.clock import Clock
from remarket_mailer.domain.consent import event_time
from remarket_mailer.errors import ConflictError, UnavailableError, ValidationError
from remarket_mailer.schemas import AnyEvent, IncomingEvent, is_catalog_event
from remarket_mailer.services.ingest.batch import Batch, IngestResult, Prepared
from remarket_mailer.services.ingest.enrich import enrich
from remarket_mailer.services.ingest.enroll import apply_exits, apply_triggers
from remarket_mailer.services.ingest.facts import apply_facts
from remarket_mailer.services.ingest.interest import note_interest
from remarket_mailer.services.unit_of_work import UnitOfWork
from remarket_mailer.workflows.loader import WorkflowSet

__all__ = ["IngestOutcome", "IngestResult", "body_hash", "ingest_batch", "ingest_event"]

log = logging.getLogger(__name__)

_ATTEMPTS = 3


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
    event: IncomingEvent,
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
    items: Sequence[tuple[IncomingEvent, dict[str, Any]]],
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
    prepared: list[Prepared],
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
    if isinstance(exc, ValueRefused):
        # The database refused a value (too long, out of range): say so, not which SQL.
        return "the event could not be stored: a value is out of range for its field"
    return "the event could not be applied; the error was logged"


def _ingest_prepared(
    uow: UnitOfWork,
    workflows: WorkflowSet,
    clock: Clock,
    prepared: list[Prepared],
) -> list[IngestOutcome]:
    for attempt in range(_ATTEMPTS):
        try:
            with uow() as session:
                batch = Batch(session, workflows, clock.now(), prepared)
                results = _run(batch)
            workflows.stored |= batch.stored_versions  # committed now
            for (event, _, _), result in zip(prepared, results, strict=True):
                outcome = (
                    "conflict"
                    if isinstance(result, ConflictError)
                    else "rejected"
                    if isinstance(result, ValidationError)
                    else "duplicate"
                    if result.duplicate
                    else "accepted"
                )
                metrics.EVENTS.labels(event.type, outcome).inc()
            return results
        except RowConflict:
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _run(batch: Batch) -> list[IngestOutcome]:
    """The batch's events in order (replays answered from the prefetched hashes), then its
    writes."""
    results: list[IngestOutcome] = []
    for event, raw, digest in batch.items:
        try:
            event_time(event.occurred_at, batch.now)
        except ValueError as exc:
            # A stamp far ahead of our clock would win every "newer wins" rule until then
            # (a product, a cart, the order that ends reminders): refused, as for consent.
            results.append(ValidationError(str(exc), "occurred_at"))
            continue
        known = batch.seen.get(event.event_id)
        if known is not None:
            if known != digest:
                message = f"event_id {event.event_id!r} was already used for a different event body"
                results.append(ConflictError(message))
            else:
                results.append(IngestResult(event.event_id, duplicate=True))
            continue
        if is_catalog_event(event):
            batch.seen[event.event_id] = digest
            batch.record_event(event, raw, digest, None)
            batch.change_catalog(event)
            results.append(IngestResult(event.event_id))
            continue
        try:
            event = enrich(event, batch.products)
        except ValidationError as exc:
            results.append(exc)  # nothing of it is written; its id stays free
            continue
        batch.seen[event.event_id] = digest
        contact = batch.contact_for(event)
        batch.record_event(event, raw, digest, contact.id)
        results.append(_apply(batch, contact, event))
    batch.finish()
    return results


def _apply(batch: Batch, contact: ContactRow, event: AnyEvent) -> IngestResult:
    """Facts first, then exits, then triggers: an order exits the cart's reminders before
    anything it triggers starts."""
    result = IngestResult(event.event_id)
    facts = apply_facts(batch, contact, event)
    note_interest(batch, contact, event)
    result.exited = apply_exits(batch, contact, event, facts)
    if facts.may_trigger:
        apply_triggers(batch, contact, event, facts, result)
    return result
