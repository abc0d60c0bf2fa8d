"""GDPR: export everything we hold about a person; erase it, keeping only a hashed
suppression entry so the address is never mailed again (ICO: a suppression list, not a
deletion that lets the address be re-imported and mailed)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import inspect as sa_inspect

from remarket_mailer.db import repository as repo
from remarket_mailer.domain.clock import Clock
from remarket_mailer.domain.emails import normalize_email
from remarket_mailer.errors import ValidationError
from remarket_mailer.services.unit_of_work import UnitOfWork


def _row(obj: Any) -> dict[str, Any]:
    mapper = sa_inspect(obj).mapper
    return {c.key: _plain(getattr(obj, c.key)) for c in mapper.column_attrs}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def export_contact(uow: UnitOfWork, email: str) -> dict[str, Any]:
    """All data about the contact with ``email`` as JSON-ready dicts.

    Raises ValidationError when no contact has that address.
    """
    address = normalize_email(email)
    with uow() as session:
        contact = repo.find_contact(session, None, address)
        if contact is None:
            raise ValidationError(f"no contact with the address {address}", field="email")
        data = repo.contact_data(session, contact)
        return {
            "contact": _row(contact),
            "suppressed": repo.suppression_reason(session, address),
            **{name: [_row(r) for r in rows] for name, rows in data.items()},
        }


def erase_contact(uow: UnitOfWork, clock: Clock, email: str) -> dict[str, int]:
    """Erase the contact with ``email``; the address stays suppressed (hashed) for good.

    Works for an unknown address too: it is suppressed so a later import cannot mail it.
    """
    address = normalize_email(email)
    if "@" not in address:
        raise ValidationError(f"{email!r} is not an email address", field="email")
    now = clock.now()
    with uow() as session:
        repo.suppress(session, address, "erased", repo.ERASED_DETAIL, now)
        repo.scrub_address(session, address)
        contact = repo.find_contact(session, None, address)
        if contact is None:
            return {"contacts": 0}
        return repo.erase_contact_rows(session, contact)
