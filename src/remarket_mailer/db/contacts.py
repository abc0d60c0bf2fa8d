"""Contacts: found by the references events carry, created when an event names a new one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    bindparam,
    or_,
    select,
)
from sqlalchemy.orm import Session

from remarket_mailer.db.models import (
    Contact,
)
from remarket_mailer.db.sql import in_ids, insert_new, track
from remarket_mailer.domain.emails import normalize_email

ContactRow = Contact
"""A contact as ingest holds it while a batch applies: loaded or built here, changed by the
batch, flushed by its session. Services name the type; only this package builds one."""

_CONTACTS_BY_REFS = select(Contact).where(
    or_(
        Contact.external_id.in_(bindparam("ext", expanding=True)),
        Contact.email.in_(bindparam("emails", expanding=True)),
    )
)


def contacts_by_refs(
    session: Session, external_ids: Iterable[str], emails: Iterable[str]
) -> list[Contact]:
    ext, mails = list(set(external_ids)), list(set(emails))
    if not ext and not mails:
        return []
    return list(session.scalars(_CONTACTS_BY_REFS, {"ext": ext, "emails": mails}))


def new_contact(external_id: str | None, email: str | None, now: datetime) -> Contact:
    """A contact an event names for the first time, every column set; written with
    ``add_contacts``."""
    return Contact(
        external_id=external_id,
        email=email,
        first_name=None,
        last_name=None,
        locale=None,
        timezone=None,
        attributes={},
        first_order_at=None,
        profile_updated_at=None,
        created_at=now,
        updated_at=now,
    )


def add_contacts(session: Session, contacts: Sequence[Contact]) -> None:
    """INSERT new contacts in one statement (they get their ids), then let the session track
    them like loaded ones (every column is set), so later changes flush as UPDATEs."""
    insert_new(session, Contact, contacts)
    track(session, contacts)


def find_contact(session: Session, external_id: str | None, email: str | None) -> Contact | None:
    if external_id is not None:
        found = session.scalar(select(Contact).where(Contact.external_id == external_id))
        if found is not None:
            return found
    if email is not None:
        return session.scalar(select(Contact).where(Contact.email == email))
    return None


def contacts_by_id(session: Session, ids: Iterable[int]) -> dict[int, Contact]:
    ids = set(ids)
    if not ids:
        return {}
    return {c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(ids)))}


@dataclass(frozen=True, slots=True)
class ContactFacts:
    """What sending reads of a contact: a plain row, not an ORM object (loading those costs
    ~20 µs each, a send batch reads hundreds)."""

    id: int
    email: str | None
    first_name: str | None
    last_name: str | None
    locale: str | None
    timezone: str | None
    attributes: dict[str, Any]
    first_order_at: datetime | None


def contact_facts_by_id(session: Session, ids: Iterable[int]) -> dict[int, ContactFacts]:
    ids = set(ids)
    if not ids:
        return {}
    rows = session.connection().execute(
        select(
            Contact.id,
            Contact.email,
            Contact.first_name,
            Contact.last_name,
            Contact.locale,
            Contact.timezone,
            Contact.attributes,
            Contact.first_order_at,
        ).where(in_ids(session, Contact.id, "ids", ids))
    )
    return {row[0]: ContactFacts(*row) for row in rows.all()}


def lock_contacts(session: Session, contact_ids: Iterable[int]) -> None:
    """Row-lock contacts (in id order, so two workers never deadlock) while their caps are
    decided: a second worker waits, then sees the first one's in-flight sends."""
    ids = sorted(set(contact_ids))
    if ids:
        session.execute(
            select(Contact.id)
            .where(in_ids(session, Contact.id, "ids", ids))
            .order_by(Contact.id)
            .with_for_update()
        )


def contacts_by_email(session: Session, emails: Iterable[str]) -> dict[str, Contact]:
    emails = {normalize_email(e) for e in emails if e}
    if not emails:
        return {}
    return {
        c.email: c
        for c in session.scalars(select(Contact).where(Contact.email.in_(emails)))
        if c.email
    }
