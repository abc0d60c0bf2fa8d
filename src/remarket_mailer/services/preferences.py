"""What the unsubscribe and preference page needs to know about the contact of a link."""

from __future__ import annotations

from remarket_mailer.db.contacts import contacts_by_id
from remarket_mailer.services.unit_of_work import UnitOfWork


def contact_language(uow: UnitOfWork, contact_id: int) -> str | None:
    """The locale of the contact (``nl-NL``), None when it has none or no longer exists
    (erased): the page then shows in English."""
    with uow() as session:
        contact = contacts_by_id(session, [contact_id]).get(contact_id)
        return contact.locale if contact is not None else None
