"""What segments read of a batch of contacts: one statement whatever its size (stored
members are in ``db.segment_members``)."""

from __future__ import annotations

from collections.abc import Iterable
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
    Text,
    any_,
    bindparam,
    cast,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.sqltypes import NullType

from remarket_mailer.db.models import (
    Consent,
    Delivery,
    Event,
    Order,
    Product,
    SegmentMember,
    UTCDateTime,
)
from remarket_mailer.db.models import TrackingEvent as TrackingEventRow
from remarket_mailer.domain.consent import ConsentRecord, current_consent
from remarket_mailer.domain.engagement import EngagementEvent, EngagementKind
from remarket_mailer.domain.segments import OrderFact, ViewFact


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


def _row(kind: str, contact: Any, at: Any, *rest: Any) -> Any:
    """One part of the union: (kind, contact, time, second time, number, text, second text,
    JSON); None is a NULL of that column's type."""
    types: tuple[Any, ...] = (UTCDateTime(), Numeric(20, 2), Text(), Text(), JSON())
    values = (*rest, *([None] * (len(types) - len(rest))))
    # Only NULLs are cast: a cast column would change (SQLite reads CAST(t AS DATETIME) as a
    # number); PostgreSQL unifies the rest (bigint with numeric, varchar with text).
    columns = [cast(null(), t) if v is None else v for v, t in zip(values, types, strict=True)]
    names = ("at2", "number", "text", "text2", "data")
    return select(
        literal(kind, String(8)).label("kind"),
        contact.label("contact_id"),
        at.label("at"),
        *(c.label(n) for c, n in zip(columns, names, strict=True)),
    )


def _behaviour_statement(dialect: str) -> Any:
    """Every row segments read of some contacts, as one UNION ALL of uniform rows."""
    found = _BEHAVIOUR.get(dialect)
    if found is not None:
        return found
    ids = _ids_param(dialect)

    def among(column: Any) -> Any:
        return column == any_(ids) if dialect == "postgresql" else column.in_(ids)

    since = bindparam("since", type_=UTCDateTime())
    te = TrackingEventRow
    parts = [
        _row(
            "order", Order.contact_id, Order.placed_at, None, Order.total, None, None, Order.items
        ).where(among(Order.contact_id)),
        _row("view", Event.contact_id, Event.occurred_at, None, None, None, None, Event.payload)
        .where(among(Event.contact_id))
        .where(Event.type == "product.viewed", Event.occurred_at >= since),
        _row(
            "hit",
            Delivery.contact_id,
            te.occurred_at,
            Delivery.sent_at,
            Delivery.id,
            te.kind,
            te.user_agent,
        )
        .join(te, te.delivery_id == Delivery.id)
        .where(among(Delivery.contact_id))
        .where(te.kind.in_(("opened", "clicked")), te.occurred_at >= since),
        _row(
            "consent",
            Consent.contact_id,
            Consent.occurred_at,
            Consent.recorded_at,
            Consent.id,
            Consent.topic,
            Consent.status,
        ).where(among(Consent.contact_id)),
        _row(
            "member",
            SegmentMember.contact_id,
            SegmentMember.joined_at,
            None,
            None,
            SegmentMember.segment,
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
