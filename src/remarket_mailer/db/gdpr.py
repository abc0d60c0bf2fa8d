"""GDPR: everything stored about a contact, and its erasure."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    delete,
    inspect,
    select,
    update,
)
from sqlalchemy.orm import Session

from remarket_mailer.db.consent import email_hash
from remarket_mailer.db.models import (
    Cart,
    Consent,
    Contact,
    Delivery,
    DiscountCode,
    Enrollment,
    Event,
    Order,
    ProductInterest,
    SegmentMember,
    Subscription,
    Suppression,
)
from remarket_mailer.db.models import TrackingEvent as TrackingEventRow


def columns_of(row: Any) -> dict[str, Any]:
    """A loaded row's columns by name, values as stored (datetimes, Decimals, JSON)."""
    return {c.key: getattr(row, c.key) for c in inspect(row).mapper.column_attrs}


def contact_data(session: Session, contact: Contact) -> dict[str, list[dict[str, Any]]]:
    """Every row that belongs to ``contact``, by table, each as ``columns_of`` gives it."""
    return {
        name: [columns_of(row) for row in rows] for name, rows in _rows_of(session, contact).items()
    }


def _rows_of(session: Session, contact: Contact) -> dict[str, list[Any]]:
    cid = contact.id
    return {
        "consents": list(session.scalars(select(Consent).where(Consent.contact_id == cid))),
        "events": list(session.scalars(select(Event).where(Event.contact_id == cid))),
        "carts": list(session.scalars(select(Cart).where(Cart.contact_id == cid))),
        "orders": list(session.scalars(select(Order).where(Order.contact_id == cid))),
        "subscriptions": list(
            session.scalars(select(Subscription).where(Subscription.contact_id == cid))
        ),
        "enrollments": list(
            session.scalars(select(Enrollment).where(Enrollment.contact_id == cid))
        ),
        "deliveries": list(session.scalars(select(Delivery).where(Delivery.contact_id == cid))),
        "discount_codes": list(
            session.scalars(select(DiscountCode).where(DiscountCode.contact_id == cid))
        ),
        "segments": list(
            session.scalars(select(SegmentMember).where(SegmentMember.contact_id == cid))
        ),
        "product_interests": list(
            session.scalars(select(ProductInterest).where(ProductInterest.contact_id == cid))
        ),
    }


def erase_contact_rows(session: Session, contact: Contact) -> dict[str, int]:
    """Delete the contact and everything personal about it; returns rows deleted per table.

    Discount codes stay (the shop may still honour them) but lose their owner; tracking
    events are keyed by hash only and stay for the bounce and complaint history, their free
    text scrubbed here for the contact's deliveries (``scrub_address`` does it by hash).
    """

    cid = contact.id
    counts: dict[str, int] = {}
    delivery_ids = select(Delivery.id).where(Delivery.contact_id == cid)
    session.execute(
        update(TrackingEventRow)
        .where(TrackingEventRow.delivery_id.in_(delivery_ids))
        .values(detail=None)
        .execution_options(synchronize_session=False)
    )
    for name, model, column in (
        ("deliveries", Delivery, Delivery.contact_id),
        ("enrollments", Enrollment, Enrollment.contact_id),
        ("events", Event, Event.contact_id),
        ("consents", Consent, Consent.contact_id),
        ("carts", Cart, Cart.contact_id),
        ("orders", Order, Order.contact_id),
        ("subscriptions", Subscription, Subscription.contact_id),
        ("segment_members", SegmentMember, SegmentMember.contact_id),
        ("product_interests", ProductInterest, ProductInterest.contact_id),
    ):
        result = session.execute(delete(model).where(column == cid))
        counts[name] = int(result.rowcount)  # type: ignore[attr-defined]
    session.execute(
        update(DiscountCode).where(DiscountCode.contact_id == cid).values(contact_id=None)
    )
    session.execute(delete(Contact).where(Contact.id == cid))
    counts["contacts"] = 1
    return counts


ERASED_DETAIL = "GDPR erasure"


def scrub_address(session: Session, email: str) -> None:
    """Clear the free text kept next to ``email``'s hash: an ESP's bounce or complaint text
    quotes the address, and only the hash may outlive an erasure. The suppression keeps its
    reason (hard bounce, complaint...), its detail says it was erased."""
    digest = email_hash(email)
    session.execute(
        update(Suppression).where(Suppression.email_hash == digest).values(detail=ERASED_DETAIL)
    )
    session.execute(
        update(TrackingEventRow)
        .where(TrackingEventRow.email_hash == digest)
        .values(detail=None)
        .execution_options(synchronize_session=False)
    )
