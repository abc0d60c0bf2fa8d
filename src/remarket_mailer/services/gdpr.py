"""GDPR: export everything we hold about a person; erase it, keeping only a hashed
suppression entry so the address is never mailed again (ICO: a suppression list, not a
deletion that lets the address be re-imported and mailed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from remarket_mailer.db import consent as consent_db
from remarket_mailer.db import contacts as contacts_db
from remarket_mailer.db import gdpr as gdpr_db
from remarket_mailer.domain.clock import Clock
from remarket_mailer.domain.emails import normalize_email
from remarket_mailer.errors import ValidationError
from remarket_mailer.services.unit_of_work import UnitOfWork


def _row(columns: dict[str, Any]) -> dict[str, Any]:
    return {name: _plain(value) for name, value in columns.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def export_contact(uow: UnitOfWork, email: str) -> dict[str, Any] | None:
    """All data about the contact with ``email`` as JSON-ready dicts; None when no contact
    has that address.

    Raises ValidationError when ``email`` is not an address.
    """
    address = normalize_email(email)
    if "@" not in address:
        raise ValidationError(f"{email!r} is not an email address", field="email")
    with uow() as session:
        contact = contacts_db.find_contact(session, None, address)
        if contact is None:
            return None
        data = gdpr_db.contact_data(session, contact)
        return {
            "contact": _row(gdpr_db.columns_of(contact)),
            "suppressed": consent_db.suppression_reason(session, address),
            **{name: [_row(r) for r in rows] for name, rows in data.items()},
        }


@dataclass(frozen=True)
class ErasureResult:
    """What an erasure did, for the API's JSON and the CLI's sentence."""

    address: str
    """The address as normalized (the spelling it was looked up and hashed by)."""
    found: bool
    """A contact had this address; its data is deleted."""
    newly_suppressed: bool
    """The address was not suppressed before (it is now, in any case)."""
    deleted: dict[str, int] = field(default_factory=dict)
    """Rows deleted per table (empty when nothing was found)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "found": self.found,
            "erased": self.found,
            "suppressed": True,
            "already_suppressed": not self.newly_suppressed,
            "deleted": self.deleted,
            "message": self.message(),
        }

    def message(self) -> str:
        suppressed = (
            "was already" if not self.newly_suppressed else "is now"
        ) + " on the suppression list (as a hash only), so it is never emailed"
        if not self.found:
            return (
                f"No contact has the address {self.address}: nothing was erased. "
                f"The address {suppressed}."
            )
        rows = ", ".join(f"{table} {n}" for table, n in self.deleted.items() if n)
        return (
            f"Erased the contact {self.address} (rows deleted: {rows}). The address {suppressed}."
        )


def erase_contact(uow: UnitOfWork, clock: Clock, email: str) -> ErasureResult:
    """Erase the contact with ``email``; the address stays suppressed (hashed) for good.

    Works for an unknown address too: it is suppressed so a later import cannot mail it.
    Raises ValidationError when ``email`` is not an address.
    """
    address = normalize_email(email)
    if "@" not in address:
        raise ValidationError(f"{email!r} is not an email address", field="email")
    now = clock.now()
    with uow() as session:
        new = consent_db.suppress(session, address, "erased", gdpr_db.ERASED_DETAIL, now)
        gdpr_db.scrub_address(session, address)
        contact = contacts_db.find_contact(session, None, address)
        if contact is None:
            return ErasureResult(address, found=False, newly_suppressed=new)
        deleted = gdpr_db.erase_contact_rows(session, contact)
        return ErasureResult(address, found=True, newly_suppressed=new, deleted=deleted)
