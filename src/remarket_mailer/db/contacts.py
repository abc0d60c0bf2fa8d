"""Contacts: found by the references events carry, created when an event names a new one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from remarket_mailer.db.models import Contact
from remarket_mailer.db.repository import insert_new, track

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
