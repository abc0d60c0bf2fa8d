"""What the unsubscribe and preference page needs to know about the contact of a link."""

from __future__ import annotations

from remarket_mailer.db.consent import latest_consents
from remarket_mailer.db.contacts import contacts_by_id
from remarket_mailer.domain.audiences import ADS_TOPIC
from remarket_mailer.services.unit_of_work import UnitOfWork


def contact_language(uow: UnitOfWork, contact_id: int) -> str | None:
    """The locale of the contact (``nl-NL``), None when it has none or no longer exists
    (erased): the page then shows in English."""
    with uow() as session:
        contact = contacts_by_id(session, [contact_id]).get(contact_id)
        return contact.locale if contact is not None else None


def allows_ads(uow: UnitOfWork, contact_id: int) -> bool:
    """Whether the contact's address may go into ad audiences now (consent for ``ads``
    granted and not withdrawn since): the page then offers to stop that too."""
    with uow() as session:
        found = latest_consents(session, [contact_id], [ADS_TOPIC])
        return found.get((contact_id, ADS_TOPIC)) == "granted"
