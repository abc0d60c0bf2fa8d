"""Segment members as stored: who is in which segment since when, what the refresh noted per
segment, the exits a segment rule makes, and the members an audience export reads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from remarket_mailer.db.deliveries import skip_pending_for_enrollments
from remarket_mailer.db.models import Contact, Enrollment, Order, SegmentMember, SegmentState
from remarket_mailer.db.sql import dialect_insert, in_ids
from remarket_mailer.domain.states import EnrollmentStatus


def memberships(session: Session, contact_ids: Iterable[int]) -> dict[int, frozenset[str]]:
    """contact id → the segments it is in (stored), for ``contact_ids``."""
    ids = set(contact_ids)
    if not ids:
        return {}
    found: dict[int, set[str]] = {}
    for segment, cid in session.connection().execute(
        select(SegmentMember.segment, SegmentMember.contact_id).where(
            in_ids(session, SegmentMember.contact_id, "contact_ids", ids)
        )
    ):
        found.setdefault(cid, set()).add(segment)
    return {cid: frozenset(names) for cid, names in found.items()}


def change_members(
    session: Session, changes: Mapping[str, tuple[Iterable[int], Iterable[int]]], now: datetime
) -> None:
    """Per segment (joined, left): one DELETE per segment that lost members, one INSERT for
    every new member of every segment."""
    gone = [(s, cid) for s, (_, left) in changes.items() for cid in left]
    for segment in {s for s, _ in gone}:
        session.execute(
            delete(SegmentMember)
            .where(SegmentMember.segment == segment)
            .where(
                in_ids(
                    session,
                    SegmentMember.contact_id,
                    "contact_ids",
                    [c for s, c in gone if s == segment],
                )
            )
        )
    new = [
        {"segment": s, "contact_id": cid, "joined_at": now}
        for s, (joined, _) in changes.items()
        for cid in joined
    ]
    if new:
        statement = dialect_insert(session, SegmentMember).on_conflict_do_nothing(
            index_elements=["segment", "contact_id"]
        )
        session.execute(statement, new)


def record_states(
    session: Session, versions: Mapping[str, str], changed: Iterable[str], now: datetime
) -> None:
    """After a full refresh: each segment's version and refresh time, and for those whose
    members changed, the time of that change."""
    changed = set(changed)
    for segment, version in versions.items():
        touched: dict[str, Any] = {"version": version, "refreshed_at": now}
        if segment in changed:
            touched["changed_at"] = now
        statement = dialect_insert(session, SegmentState).values(
            segment=segment, version=version, refreshed_at=now, changed_at=touched.get("changed_at")
        )
        session.execute(statement.on_conflict_do_update(index_elements=["segment"], set_=touched))


@dataclass(frozen=True, slots=True)
class SegmentCount:
    segment: str
    members: int
    version: str | None
    refreshed_at: datetime | None
    changed_at: datetime | None
    newest_join: datetime | None


def segment_counts(session: Session) -> dict[str, SegmentCount]:
    """Per segment: members, and what the last refresh recorded (ingest changes members
    only: the newest join stands for its changes)."""
    grouped = session.execute(
        select(SegmentMember.segment, func.count(), func.max(SegmentMember.joined_at)).group_by(
            SegmentMember.segment
        )
    ).all()
    counts = {name: n for name, n, _ in grouped}
    joins = {name: newest for name, _, newest in grouped}
    states = {s.segment: s for s in session.scalars(select(SegmentState))}
    names = set(counts) | set(states)
    return {
        name: SegmentCount(
            name,
            int(counts.get(name, 0)),
            states[name].version if name in states else None,
            states[name].refreshed_at if name in states else None,
            states[name].changed_at if name in states else None,
            joins.get(name),
        )
        for name in names
    }


def sample_members(session: Session, segment: str, limit: int) -> list[tuple[str | None, datetime]]:
    """(email, joined at) of the segment's most recent members."""
    return [
        (email, joined)
        for email, joined in session.execute(
            select(Contact.email, SegmentMember.joined_at)
            .join(Contact, Contact.id == SegmentMember.contact_id)
            .where(SegmentMember.segment == segment)
            .order_by(SegmentMember.joined_at.desc(), SegmentMember.contact_id)
            .limit(limit)
        )
    ]


def contact_id_page(session: Session, after: int, limit: int) -> list[int]:
    """The next ``limit`` contact ids after ``after``, in order (the full refresh's pages)."""
    return list(
        session.scalars(
            select(Contact.id).where(Contact.id > after).order_by(Contact.id).limit(limit)
        )
    )


def exit_enrollments(
    session: Session,
    workflow_ids: Iterable[str],
    contact_ids: Iterable[int],
    reason: str,
    now: datetime,
) -> int:
    """End the active enrollments of ``workflow_ids`` of ``contact_ids`` and skip their
    pending emails; how many ended."""
    ids, workflows = set(contact_ids), sorted(set(workflow_ids))
    if not ids or not workflows:
        return 0
    ended = list(
        session.scalars(
            update(Enrollment)
            .where(Enrollment.workflow_id.in_(workflows))
            .where(Enrollment.status == EnrollmentStatus.ACTIVE)
            .where(in_ids(session, Enrollment.contact_id, "contact_ids", ids))
            .values(status=EnrollmentStatus.EXITED, exit_reason=reason, ended_at=now)
            .returning(Enrollment.id)
            .execution_options(synchronize_session=False)
        )
    )
    skip_pending_for_enrollments(session, ended, "exited", reason, now)
    return len(ended)


@dataclass(frozen=True, slots=True)
class AudienceRow:
    contact_id: int
    email: str | None
    attributes: dict[str, Any]
    last_order_at: datetime | None


def audience_page(session: Session, segment: str, after: int, limit: int) -> list[AudienceRow]:
    """The next ``limit`` members of ``segment`` after contact id ``after``, with their last
    order."""
    last_order = (
        select(func.max(Order.placed_at))
        .where(Order.contact_id == Contact.id)
        .correlate(Contact)
        .scalar_subquery()
    )
    found = session.execute(
        select(Contact.id, Contact.email, Contact.attributes, last_order)
        .join(SegmentMember, SegmentMember.contact_id == Contact.id)
        .where(SegmentMember.segment == segment, Contact.id > after)
        .order_by(Contact.id)
        .limit(limit)
    )
    return [AudienceRow(cid, email, attrs or {}, last) for cid, email, attrs, last in found]
