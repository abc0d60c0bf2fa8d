"""Segments: the behaviour a segment reads per contact, its stored members, and the exits
that a segment rule makes. A fixed number of statements per batch of contacts, whatever its
size (``in_ids``: one array parameter on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    Numeric,
    String,
    any_,
    bindparam,
    cast,
    delete,
    func,
    literal,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.sqltypes import NullType

from remarket_mailer.db.deliveries import skip_pending_for_enrollments
from remarket_mailer.db.models import (
    Consent,
    Contact,
    Delivery,
    Enrollment,
    Event,
    Order,
    Product,
    SegmentMember,
    SegmentState,
    UTCDateTime,
)
from remarket_mailer.db.models import TrackingEvent as TrackingEventRow
from remarket_mailer.db.sql import dialect_insert, in_ids
from remarket_mailer.domain.consent import ConsentRecord, current_consent
from remarket_mailer.domain.engagement import EngagementEvent, EngagementKind
from remarket_mailer.domain.segments import OrderFact, ViewFact
from remarket_mailer.domain.states import EnrollmentStatus


@dataclass
class BehaviourRows:
    """What segments read of some contacts, by contact id (contacts themselves come from
    the caller: ingest holds them already)."""

    orders: dict[int, list[OrderFact]] = field(default_factory=dict)
    views: dict[int, list[ViewFact]] = field(default_factory=dict)
    engagement: dict[int, list[tuple[EngagementEvent, datetime | None]]] = field(
        default_factory=dict
    )
    consents: dict[int, dict[str, str]] = field(default_factory=dict)
    members: dict[int, set[str]] = field(default_factory=dict)
    """The segments each contact is stored in, read in the same statement."""


def _product_ids(items: Any) -> tuple[str, ...]:
    found = items.get("items", []) if isinstance(items, dict) else items
    if not isinstance(found, list):
        return ()
    return tuple(str(i["product_id"]) for i in found if isinstance(i, dict) and i.get("product_id"))


_BEHAVIOUR: dict[str, Any] = {}
"""The behaviour statement per dialect, built once: building it costs more than running it."""


def _ids_param(dialect: str) -> Any:
    if dialect == "postgresql":
        # As ``in_ids``: one untyped array literal, the same text for every batch.
        return cast(bindparam("ids", type_=NullType()), ARRAY(BigInteger))
    return bindparam("ids", expanding=True)


def _behaviour_statement(dialect: str) -> Any:
    """Every row segments read of some contacts, as one UNION ALL of uniform rows:
    (kind, contact, time, second time, number, text, second text, JSON)."""
    found = _BEHAVIOUR.get(dialect)
    if found is not None:
        return found
    ids = _ids_param(dialect)

    def among(column: Any) -> Any:
        return column == any_(ids) if dialect == "postgresql" else column.in_(ids)

    since = bindparam("since", type_=UTCDateTime())
    no_time = cast(null(), UTCDateTime())
    no_number = cast(null(), Numeric(20, 2))
    no_text = cast(null(), String(255))
    no_json = cast(null(), JSON())
    parts = [
        select(
            literal("order", String(8)).label("kind"),
            Order.contact_id.label("contact_id"),
            Order.placed_at.label("at"),
            no_time.label("at2"),
            cast(Order.total, Numeric(20, 2)).label("number"),
            no_text.label("text"),
            no_text.label("text2"),
            cast(Order.items, JSON()).label("data"),
        ).where(among(Order.contact_id)),
        select(
            literal("view", String(8)),
            Event.contact_id,
            Event.occurred_at,
            no_time,
            no_number,
            no_text,
            no_text,
            cast(Event.payload, JSON()),
        ).where(
            among(Event.contact_id), Event.type == "product.viewed", Event.occurred_at >= since
        ),
        select(
            literal("hit", String(8)),
            Delivery.contact_id,
            TrackingEventRow.occurred_at,
            Delivery.sent_at,
            cast(Delivery.id, Numeric(20, 2)),
            cast(TrackingEventRow.kind, String(255)),
            cast(TrackingEventRow.user_agent, String(255)),
            no_json,
        )
        .join(TrackingEventRow, TrackingEventRow.delivery_id == Delivery.id)
        .where(among(Delivery.contact_id))
        .where(
            TrackingEventRow.kind.in_(("opened", "clicked")), TrackingEventRow.occurred_at >= since
        ),
        select(
            literal("consent", String(8)),
            Consent.contact_id,
            Consent.occurred_at,
            Consent.recorded_at,
            cast(Consent.id, Numeric(20, 2)),
            cast(Consent.topic, String(255)),
            cast(Consent.status, String(255)),
            no_json,
        ).where(among(Consent.contact_id)),
        select(
            literal("member", String(8)),
            SegmentMember.contact_id,
            SegmentMember.joined_at,
            no_time,
            no_number,
            cast(SegmentMember.segment, String(255)),
            no_text,
            no_json,
        ).where(among(SegmentMember.contact_id)),
    ]
    found = _BEHAVIOUR[dialect] = union_all(*parts)
    return found


def _ids_value(dialect: str, ids: set[int]) -> Any:
    if dialect == "postgresql":
        return "{" + ",".join(str(int(i)) for i in ids) + "}"
    return sorted(int(i) for i in ids)


def behaviour_rows(
    session: Session, contact_ids: Iterable[int], since: datetime, *, categories: bool = True
) -> BehaviourRows:
    """Orders (all), product views and people's opens and clicks since ``since``, current
    consents per topic and stored segment memberships of ``contact_ids``: one statement, read
    from one snapshot (and one more for the products' categories when ``categories``)."""
    ids = set(contact_ids)
    rows = BehaviourRows()
    if not ids:
        return rows
    dialect = session.get_bind().dialect.name
    found = session.connection().execute(
        _behaviour_statement(dialect), {"ids": _ids_value(dialect, ids), "since": since}
    )
    baskets: list[tuple[int, datetime, Any, tuple[str, ...]]] = []
    seen: list[tuple[int, datetime, str, Any]] = []
    consents: list[tuple[int, int, str, ConsentRecord]] = []
    for kind, cid, at, at2, number, text, text2, data in found:
        if kind == "order":
            baskets.append((cid, at, number, _product_ids(data)))
        elif kind == "view" and isinstance(data, dict) and data.get("product_id"):
            seen.append((cid, at, str(data["product_id"]), data.get("category")))
        elif kind == "hit":
            hit = EngagementEvent(int(number), EngagementKind(text), at, text2)
            rows.engagement.setdefault(cid, []).append((hit, at2))
        elif kind == "consent":
            consents.append((cid, int(number), text, ConsentRecord(text2, at, at2)))
        elif kind == "member":
            rows.members.setdefault(cid, set()).add(text)
    wanted = {p for *_, basket in baskets for p in basket} | {v[2] for v in seen}
    category = _categories(session, wanted) if categories else {}
    for cid, placed, total, basket in baskets:
        cats = tuple(sorted({c for p in basket if (c := category.get(p))}))
        rows.orders.setdefault(cid, []).append(
            OrderFact(placed, Decimal(total) if total is not None else None, basket, cats)
        )
    for cid, at, product, named in seen:
        rows.views.setdefault(cid, []).append(ViewFact(at, product, named or category.get(product)))
    _current_consents(consents, rows)
    return rows


def _categories(session: Session, product_ids: set[str]) -> dict[str, str]:
    if not product_ids:
        return {}
    found = session.connection().execute(
        select(Product.product_id, Product.category).where(
            Product.product_id.in_(sorted(product_ids)), Product.category.is_not(None)
        )
    )
    return {str(p): str(c) for p, c in found}


def _current_consents(
    found: list[tuple[int, int, str, ConsentRecord]], rows: BehaviourRows
) -> None:
    history: dict[tuple[int, str], list[ConsentRecord]] = {}
    # In the order they arrived, as ``current_consent`` reads them.
    for cid, _, topic, record in sorted(found, key=lambda r: (r[3].recorded_at, r[1])):
        history.setdefault((cid, topic), []).append(record)
    for (cid, topic), records in history.items():
        current = current_consent(records)
        if current is not None:
            rows.consents.setdefault(cid, {})[topic] = current


# -- members -----------------------------------------------------------------------------------


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


def exit_segment_members(
    session: Session,
    segment: str,
    workflow_ids: Iterable[str],
    contact_ids: Iterable[int] | None,
    now: datetime,
) -> int:
    """End the active enrollments of ``workflow_ids`` whose contact is in ``segment`` (only
    among ``contact_ids`` when given) and skip their pending emails; how many ended."""
    members = select(SegmentMember.contact_id).where(SegmentMember.segment == segment)
    statement = (
        update(Enrollment)
        .where(Enrollment.workflow_id.in_(sorted(set(workflow_ids))))
        .where(Enrollment.status == EnrollmentStatus.ACTIVE)
        .where(Enrollment.contact_id.in_(members))
    )
    if contact_ids is not None:
        ids = set(contact_ids)
        if not ids:
            return 0
        statement = statement.where(in_ids(session, Enrollment.contact_id, "contact_ids", ids))
    reason = f"segment {segment}"
    ended = list(
        session.scalars(
            statement.values(status=EnrollmentStatus.EXITED, exit_reason=reason, ended_at=now)
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
