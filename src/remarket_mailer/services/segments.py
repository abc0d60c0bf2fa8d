"""Segment membership: kept up to date for the contacts an event batch touches (inside its
transaction), and for everyone by the scheduler's refresh, page by page.

Either way the same steps: read the contacts' behaviour (``db.segments.behaviour_rows``, a
fixed number of statements per page), evaluate every segment (``workflows.segments``),
write who joined and who left, then end the enrollments of workflows with an exit rule
``segment: NAME`` whose contact is now in NAME.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from remarket_mailer.db import contacts as contacts_db
from remarket_mailer.db import segment_members as members_db
from remarket_mailer.db import segments as segments_db
from remarket_mailer.db.session import Session
from remarket_mailer.domain.clock import Clock
from remarket_mailer.domain.segments import (
    MAX_WINDOW,
    ContactBehaviour,
    membership_change,
    people_engagement,
)
from remarket_mailer.errors import ValidationError
from remarket_mailer.services.unit_of_work import UnitOfWork
from remarket_mailer.workflows.context import ContactLike, contact_view
from remarket_mailer.workflows.loader import WorkflowSet
from remarket_mailer.workflows.segments import Segment, members_of

log = logging.getLogger(__name__)

PAGE = 1000
"""Contacts per transaction of the full refresh."""


@dataclass
class SegmentUpdate:
    evaluated: int = 0
    joined: dict[str, int] = field(default_factory=dict)
    left: dict[str, int] = field(default_factory=dict)
    exited: int = 0
    errors: int = 0

    def add(self, other: SegmentUpdate) -> None:
        self.evaluated += other.evaluated
        for name, n in other.joined.items():
            self.joined[name] = self.joined.get(name, 0) + n
        for name, n in other.left.items():
            self.left[name] = self.left.get(name, 0) + n
        self.exited += other.exited
        self.errors += other.errors


def behaviour_of(
    session: Session,
    contacts: Mapping[int, ContactLike],
    now: datetime,
    segments: list[Segment],
) -> tuple[list[ContactBehaviour], dict[int, set[str]]]:
    """The frozen facts segments read of ``contacts`` (contact id → contact), and the
    segments each is stored in: one statement (two when a segment names categories)."""
    categories = any(s.needs_categories for s in segments)
    rows = segments_db.behaviour_rows(session, contacts, now - MAX_WINDOW, categories=categories)
    facts = [
        ContactBehaviour(
            cid,
            contact_view(contact),
            tuple(rows.orders.get(cid, ())),
            tuple(rows.views.get(cid, ())),
            people_engagement(rows.engagement.get(cid, ())),
            rows.consents.get(cid, {}),
        )
        for cid, contact in contacts.items()
    ]
    return facts, rows.members


def update_members(
    session: Session,
    workflows: WorkflowSet,
    contacts: Mapping[int, ContactLike],
    now: datetime,
    *,
    segments: list[Segment] | None = None,
    full: bool = False,
) -> SegmentUpdate:
    """Re-evaluate every segment (or ``segments``) for ``contacts`` and store the changes,
    in the caller's transaction; then apply the workflows' segment exit rules to them."""
    chosen = segments if segments is not None else list(workflows.segments.segments.values())
    report = SegmentUpdate(evaluated=len(contacts))
    if not chosen or not contacts:
        return report
    # Stored members and facts come from one statement, one snapshot: a batch committing
    # meanwhile is seen in both or in neither, so this never undoes its change.
    facts, stored = behaviour_of(session, contacts, now, chosen)
    found, errors = members_of(chosen, facts, now)
    for line in errors[:5]:
        log.warning("segment expression failed, contact not counted as member: %s", line)
    report.errors = len(errors)
    changes: dict[str, tuple[frozenset[int], frozenset[int]]] = {}
    for segment in chosen:
        was = {cid for cid, names in stored.items() if segment.name in names}
        change = membership_change(contacts, found[segment.name], was)
        if change.joined or change.left:
            changes[segment.name] = (change.joined, change.left)
            report.joined[segment.name] = len(change.joined)
            report.left[segment.name] = len(change.left)
    # Enrollments before members, the order ingest writes them in too: a refresh page and an
    # ingest batch on the same contacts then wait for each other instead of deadlocking.
    for segment_name, workflow_ids in workflows.segment_exits().items():
        if segment_name in found:
            report.exited += members_db.exit_enrollments(
                session, workflow_ids, found[segment_name], f"segment {segment_name}", now
            )
    members_db.change_members(session, changes, now)
    if full:
        # Only the refresh writes the per-segment rows: every ingest batch writing them
        # would queue concurrent batches behind one row lock until each commits.
        members_db.record_states(session, {s.name: s.version for s in chosen}, changes, now)
    return report


def refresh_segments(
    uow: UnitOfWork,
    workflows: WorkflowSet,
    clock: Clock,
    names: list[str] | None = None,
    page: int = PAGE,
) -> SegmentUpdate:
    """Re-evaluate every contact (time moves on: ``ordered(7)`` ends for someone who did
    nothing), one transaction per page of contacts. ``names``: only these segments.

    Raises ValidationError for a name that is not a segment."""
    defined = workflows.segments.segments
    unknown = sorted(set(names or ()) - set(defined))
    if unknown:
        known = ", ".join(sorted(defined)) or "none"
        raise ValidationError(f"no segment named {', '.join(unknown)} (segments: {known})")
    chosen = [defined[n] for n in names] if names else list(defined.values())
    report = SegmentUpdate()
    after = 0
    while chosen:
        now = clock.now()
        with uow() as session:
            ids = members_db.contact_id_page(session, after, page)
            if not ids:
                break
            contacts = contacts_db.contact_facts_by_id(session, ids)
            report.add(
                update_members(session, workflows, contacts, now, segments=chosen, full=True)
            )
        after = ids[-1]
    if chosen and after == 0:  # no contacts at all: still note the refresh
        with uow() as session:
            members_db.record_states(session, {s.name: s.version for s in chosen}, (), clock.now())
    return report


@dataclass(frozen=True, slots=True)
class SegmentSummary:
    segment: Segment
    members: int
    updated_at: datetime | None
    refreshed_at: datetime | None
    stale: bool
    """Members were computed with another version of the expression (refresh it)."""
    sample: tuple[tuple[str | None, datetime], ...] = ()


def segment_summaries(
    uow: UnitOfWork, workflows: WorkflowSet, name: str | None = None, sample: int = 0
) -> list[SegmentSummary]:
    """Every segment (or the one named) with its stored member count and times.

    Raises ValidationError for a name that is not a segment."""
    defined = workflows.segments.segments
    if name is not None and name not in defined:
        known = ", ".join(sorted(defined)) or "none"
        raise ValidationError(f"no segment named {name!r} (segments: {known})")
    chosen = [defined[name]] if name is not None else [defined[n] for n in sorted(defined)]
    with uow() as session:
        counts = members_db.segment_counts(session)
        result = []
        for segment in chosen:
            count = counts.get(segment.name)
            updated = None
            if count is not None:
                times = [count.changed_at, count.refreshed_at, count.newest_join]
                seen = [t for t in times if t is not None]
                updated = max(seen) if seen else None
            result.append(
                SegmentSummary(
                    segment,
                    count.members if count else 0,
                    updated,
                    count.refreshed_at if count else None,
                    count is None or count.version != segment.version,
                    tuple(members_db.sample_members(session, segment.name, sample))
                    if sample
                    else (),
                )
            )
    return result
