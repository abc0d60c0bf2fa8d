"""Product interest: who saw which product at what price, and the alert job's to-do list.

Ingest records interests (one statement per batch, the newest sighting wins) and notes the
products an upsert left in stock (``product_changes``, in the upsert's transaction). The
alert job reads a page of notes, the products' state and the interests in them, and after
its derived events are in, marks what it announced and deletes the notes it handled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, bindparam, delete, select, update
from sqlalchemy.orm import Session

from remarket_mailer.db.models import (
    Contact,
    Product,
    ProductChange,
    ProductCoview,
    ProductInterest,
)
from remarket_mailer.db.sql import dialect_insert, insert_rows
from remarket_mailer.domain.product_alerts import Alert, Interest, ProductState


@dataclass(frozen=True, slots=True)
class Sighting:
    """One view or cart line: what a contact saw of a product, and when."""

    contact_id: int
    product_id: str
    seen_at: datetime
    price: Decimal | None
    currency: str | None
    available: bool | None


def record_interests(session: Session, sightings: Iterable[Sighting]) -> None:
    """Remember each sighting unless the contact's stored one of that product is newer; a
    newer sighting forgets what was announced (they have seen the product as it is now).
    One statement however many sightings."""
    newest: dict[tuple[int, str], Sighting] = {}
    for s in sightings:
        key = (s.contact_id, s.product_id)
        if key not in newest or newest[key].seen_at <= s.seen_at:
            newest[key] = s
    if not newest:
        return
    statement = dialect_insert(session, ProductInterest).values(
        [
            {
                "contact_id": s.contact_id,
                "product_id": s.product_id,
                "seen_at": s.seen_at,
                "price": s.price,
                "currency": s.currency,
                "available": s.available,
                "restock_notified_at": None,
                "drop_notified_price": None,
            }
            for _, s in sorted(newest.items())
        ]
    )
    excluded = statement.excluded
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["contact_id", "product_id"],
            set_={
                name: getattr(excluded, name)
                for name in (
                    *("seen_at", "price", "currency", "available"),
                    *("restock_notified_at", "drop_notified_price"),
                )
            },
            where=ProductInterest.seen_at <= excluded.seen_at,
        )
    )


def forget_bought(session: Session, bought: Mapping[tuple[int, str], datetime]) -> None:
    """(contact, product) → when ordered: a person who bought a product is no longer waiting
    for it (a sighting after the order stays). One statement."""
    if not bought:
        return
    session.connection().execute(
        delete(ProductInterest).where(
            ProductInterest.contact_id == bindparam("c"),
            ProductInterest.product_id == bindparam("p"),
            ProductInterest.seen_at <= bindparam("t"),
        ),
        [{"c": c, "p": p, "t": t} for (c, p), t in sorted(bought.items())],
    )


def note_changes(session: Session, product_ids: Iterable[str], now: datetime) -> None:
    """Put products upserted in stock on the alert job's list (one INSERT)."""
    rows = [{"product_id": p, "noticed_at": now} for p in sorted(set(product_ids))]
    insert_rows(session, ProductChange, rows)


def pending_changes(session: Session, limit: int) -> list[tuple[int, str]]:
    """The oldest notes (id, product id), at most ``limit``."""
    rows = session.execute(
        select(ProductChange.id, ProductChange.product_id).order_by(ProductChange.id).limit(limit)
    )
    return [(int(i), str(p)) for i, p in rows]


def forget_changes(session: Session, ids: Sequence[int]) -> None:
    """Delete exactly the notes handled (one noted meanwhile stays for the next run)."""
    if ids:
        session.execute(delete(ProductChange).where(ProductChange.id.in_(sorted(set(ids)))))


def product_states(session: Session, product_ids: Iterable[str]) -> dict[str, ProductState]:
    wanted = sorted(set(product_ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(
            Product.product_id,
            Product.available,
            Product.deleted_at,
            Product.price,
            Product.currency,
            Product.restocked_at,
            Product.updated_at,
        ).where(Product.product_id.in_(wanted))
    )
    return {
        r[0]: ProductState(r[0], bool(r[1]), r[2] is not None, r[3], r[4], r[5], r[6]) for r in rows
    }


@dataclass(frozen=True, slots=True)
class InterestedContact:
    interest: Interest
    external_id: str | None
    email: str | None


def interests_in(
    session: Session, product_ids: Iterable[str], since: datetime
) -> list[InterestedContact]:
    """The interests in ``product_ids`` seen since ``since``, with each contact's reference
    (an erased contact has none and is left out). One query."""
    wanted = sorted(set(product_ids))
    if not wanted:
        return []
    i = ProductInterest
    rows = session.execute(
        select(
            *(i.contact_id, i.product_id, i.seen_at, i.price, i.currency, i.available),
            *(i.restock_notified_at, i.drop_notified_price),
            Contact.external_id,
            Contact.email,
        )
        .join(Contact, Contact.id == i.contact_id)
        .where(i.product_id.in_(wanted), i.seen_at >= since)
        .where((Contact.external_id.is_not(None)) | (Contact.email.is_not(None)))
        .order_by(i.product_id, i.contact_id)
    )
    return [InterestedContact(Interest(*r[:8]), r[8], r[9]) for r in rows]


def mark_announced(session: Session, alerts: Sequence[Alert]) -> None:
    """Remember what each alert announced (the restock, by the alert's time, which is never
    before it; the price): that change is not news for that person any more. One statement
    per kind."""
    connection = session.connection()
    interest = ProductInterest
    same = and_(interest.contact_id == bindparam("c"), interest.product_id == bindparam("p"))
    restocks = [
        {"c": a.contact_id, "p": a.product_id, "at": a.occurred_at}
        for a in alerts
        if a.kind == "back_in_stock"
    ]
    if restocks:
        connection.execute(
            update(interest).where(same).values(restock_notified_at=bindparam("at")), restocks
        )
    drops: list[dict[str, Any]] = [
        {"c": a.contact_id, "p": a.product_id, "np": a.price}
        for a in alerts
        if a.kind == "price_dropped"
    ]
    if drops:
        connection.execute(
            update(interest).where(same).values(drop_notified_price=bindparam("np")), drops
        )


def recent_interests(
    session: Session, contact_ids: Iterable[int], since: datetime
) -> dict[int, dict[str, datetime]]:
    """contact → product → seen at, for sightings since ``since`` (one query)."""
    wanted = sorted(set(contact_ids))
    found: dict[int, dict[str, datetime]] = {c: {} for c in wanted}
    if not wanted:
        return found
    i = ProductInterest
    rows = session.execute(
        select(i.contact_id, i.product_id, i.seen_at).where(
            i.contact_id.in_(wanted), i.seen_at >= since
        )
    )
    for contact_id, product_id, seen_at in rows:
        found[int(contact_id)][str(product_id)] = seen_at
    return found


def count_coviews(session: Session, pairs: Mapping[tuple[str, str], int]) -> None:
    """Add people who looked at both to each pair (both directions given): one statement."""
    if not pairs:
        return
    statement = dialect_insert(session, ProductCoview).values(
        [{"product_id": a, "other_id": b, "contacts": n} for (a, b), n in sorted(pairs.items())]
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["product_id", "other_id"],
            set_={"contacts": ProductCoview.contacts + statement.excluded.contacts},
        )
    )
